/* sdnotify.h — systemd's service notification protocol (sd_notify(3)), without libsystemd.
 *
 * A service started with Type=notify finds the address of its service manager in
 * $NOTIFY_SOCKET and tells it "READY=1" once it serves, "STOPPING=1" when it begins to
 * shut down, "RELOADING=1" … "READY=1" around a reload. The protocol is one datagram of
 * newline-separated KEY=VALUE lines to an AF_UNIX SOCK_DGRAM socket: a path, or an
 * abstract address written with a leading '@'. systemd documents it as a stable interface
 * that services may speak themselves, which is a dozen lines here against a library (and a
 * package dependency) for ternd and a test that can play the manager with any datagram
 * socket. */
#ifndef TERN_SDNOTIFY_H
#define TERN_SDNOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=listening on 127.0.0.1:8080") to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when NOTIFY_SOCKET is unset or empty (not run by a manager that
 * wants to hear), TERN_EINVAL for an address that is not '/…' or '@…' or is too long
 * (vsock: addresses are not supported), TERN_EIO when the datagram could not be sent.
 * Never blocks: a manager that does not read loses the message (MSG_DONTWAIT). */
int sdnotify_send(const char *state);

#endif
