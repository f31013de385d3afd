"""Safety monitoring: policies, the in-process monitor, sandbox events and incidents."""
