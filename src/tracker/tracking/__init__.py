"""The tracking engine: Step Functions executions in, contract transactions and published files out; and execution control (deploy a model, start an execution)."""
