"""Instance tracking for executable models: anchor Step Functions executions on Ethereum."""

__version__ = "0.1.0"
