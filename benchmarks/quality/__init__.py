"""Mining-quality benchmark (issue 12): hardmine vs uniform, class-balanced and RFS sampling on long tails
with and without known categories, under label noise (docs/benchmarks.md)."""
