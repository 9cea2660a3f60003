"""The master and its workers: the arbiter's signals and parts, sockets handed over,
systemd, reload, timeouts, metrics and StatsD."""
