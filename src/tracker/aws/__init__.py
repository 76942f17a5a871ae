"""AWS Step Functions through boto3: sessions, the one error translator, executions and their history events, read from the history API or CloudWatch Logs."""
