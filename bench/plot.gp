# Latency against throughput for the pairs rate sweep of scripts/bench.sh.
# Input: tern-bench --tsv rows (scenario, target rate, sent/s, delivered/s, p50, p90, p99,
# p99.9, max in microseconds), sorted by delivered/s. Called as
#   gnuplot -e "datafile='x.tsv'; outfile='x.png'; label='...'" bench/plot.gp
set terminal pngcairo size 1000,640 font "sans,10"
set output outfile
set title sprintf("tern pairs (1:1) — delivery latency against throughput (%s)", label)
set xlabel "deliveries per second (measured)"
set ylabel "latency, microseconds (log scale)"
set logscale y
set grid xtics ytics mytics
set key top left
set datafile separator "\t"
set format x "%.0s%c"
plot datafile using 4:5 with linespoints lw 2 pt 7 title "p50", \
     datafile using 4:7 with linespoints lw 2 pt 5 title "p99", \
     datafile using 4:8 with linespoints lw 2 pt 9 title "p99.9", \
     datafile using 4:8:($2 > 0 ? sprintf("%.0fk/s", $2 / 1000) : "flat out") with labels offset 0,1 font ",8" notitle
