"""Applications built on the public API: the command line, the demo, the benchmark
command and table reading. The library never imports this package."""
