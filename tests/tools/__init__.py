"""The repository's tools that are not fastwsgi modules, kept working: the benchmarks
(``bench/``) and the parser fuzzer's harness (``fuzz/``)."""
