#!/usr/bin/perl
# no-io-uring.pl [--enter] COMMAND ARGS... — runs COMMAND with io_uring_setup(2) refused
# (EPERM) by a seccomp filter, as Docker's default profile and other container sandboxes
# refuse it; with --enter, io_uring_setup is let through and io_uring_enter(2) refused
# instead (a ring that can be made but not used). How tests/proto/uring.test.mjs starts a
# ternd that must fall back to write(2). x86_64 only (the system call numbers below); perl
# because Debian always has it.
use strict;
use warnings;
my $nr = 425;                                                     # io_uring_setup
if (@ARGV && $ARGV[0] eq '--enter') { shift @ARGV; $nr = 426; }   # io_uring_enter
# BPF: load the system call number; $nr → errno EPERM; all else allowed
my $filter = pack('SCCL', 0x20, 0, 0, 0) . pack('SCCL', 0x15, 0, 1, $nr)
  . pack('SCCL', 0x06, 0, 0, 0x00050001) . pack('SCCL', 0x06, 0, 0, 0x7fff0000);
my $prog = pack('S x6 Q', 4, unpack('Q', pack('p', $filter)));   # struct sock_fprog
syscall(157, 38, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_NO_NEW_PRIVS): $!";      # prctl = 157
syscall(157, 22, 2, $prog, 0, 0) == 0 or die "prctl(PR_SET_SECCOMP): $!";       # SECCOMP_MODE_FILTER
exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!";
