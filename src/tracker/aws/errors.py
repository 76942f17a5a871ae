"""AWS failures as errors a user can act on: the one translator of botocore's errors."""

from __future__ import annotations

from tracker.errors import ConfigurationError, TrackerError, one_line

ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})


class StepFunctionsError(TrackerError):
    """Base of the failures reading Step Functions or CloudWatch Logs."""


class MalformedArnError(StepFunctionsError):
    """An ARN given on the command line is not a state machine or execution ARN."""


class StateMachineNotFoundError(StepFunctionsError):
    """A state machine or execution ARN names nothing that exists."""


class NoStateMachinesError(StepFunctionsError):
    """The region has no state machines to track."""


class AccessDeniedError(StepFunctionsError):
    """The AWS credentials lack a permission the tracker needs."""


class MalformedDefinitionError(StepFunctionsError):
    """DescribeStateMachine returned a definition that is not an Amazon States Language object."""


class MalformedLogMessageError(StepFunctionsError):
    """A CloudWatch Logs message is not a Step Functions execution event."""


class LogGroupNotFoundError(StepFunctionsError):
    """The log group to read does not exist."""


class AwsRequestError(StepFunctionsError):
    """Any other refusal from AWS, with its code and message."""


def translate_aws_error(error: Exception, subject: str) -> Exception:
    """An AWS failure as the tracker's error type; transient faults are returned unchanged."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    from tracker.retry import is_transient

    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ConfigurationError(
            "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if not isinstance(error, ClientError):
        return error
    if is_transient(error):
        return error
    code = str(error.response.get("Error", {}).get("Code", ""))
    message = str(error.response.get("Error", {}).get("Message", ""))
    operation = getattr(error, "operation_name", "request")
    if code in ACCESS_DENIED_CODES or "not authorized" in message:
        return AccessDeniedError(
            f"access denied: AWS refused {operation} on {subject}; the credentials lack that permission"
        )
    if code in {"StateMachineDoesNotExist", "ExecutionDoesNotExist", "StateMachineVersionDoesNotExist"}:
        return StateMachineNotFoundError(f"{subject} does not exist ({code})")
    if code == "InvalidArn":
        return MalformedArnError(f"malformed ARN {subject}: {one_line(message)}")
    if code == "ResourceNotFoundException" and "log group" in message.lower():
        return LogGroupNotFoundError(f"{subject} does not exist")
    return AwsRequestError(f"AWS {operation} on {subject} failed: {code}: {one_line(message)}")
