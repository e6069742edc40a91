# Latency versus load from fanout.dat (tools/bench/summarize.mjs):
#   gnuplot -e "dir='results/<ts>'" tools/bench/latency.gp
if (!exists("dir")) dir = "."
set terminal pngcairo size 1100,800 font ",11"
set output dir."/latency-vs-load.png"
set multiplot layout 2,1 title "chat cluster: 1,000 clients, 10 rooms, 2 gateways, 100-byte messages"
set title "latency, send to receipt"
set xlabel "offered deliveries per second (what each run achieved: summary.md)"
set ylabel "ms"
set logscale y
set grid
set key top left
set format x "%.0s%c"
plot dir."/fanout.dat" using 1:3 with linespoints title "p50", \
     ''                using 1:4 with linespoints title "p90", \
     ''                using 1:5 with linespoints title "p99", \
     ''                using 1:6 with linespoints title "p99.9", \
     2 with lines dashtype 2 lc rgb "red" title "target p99 at 25k: 2 ms"
unset logscale y
set title "efficiency"
set ylabel "deliveries per server CPU-second"
set format y "%.0s%c"
plot dir."/fanout.dat" using 1:7 with linespoints title "gateways + worker + Redis", \
     500000 with lines dashtype 2 lc rgb "red" title "target 500k"
unset multiplot
