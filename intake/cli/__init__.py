"""The command line: `intake [--config PATH] [--json] COMMAND` (the contract in DESIGN.md), one module a command group."""
