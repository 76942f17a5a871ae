"""AWS failures as errors a user can act on: the one translator of botocore's errors.

botocore has already retried what is worth retrying (throttling, 5xx, dropped connections: see
`tracker.aws.session`), so whatever reaches the translator is final for this run and becomes one
line that names the cause and, where there is one, the fix.
"""

from __future__ import annotations

from tracker.errors import ConfigurationError, TrackerError, one_line

ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})
NOT_FOUND_CODES = frozenset(
    {"StateMachineDoesNotExist", "ExecutionDoesNotExist", "StateMachineVersionDoesNotExist", "ResourceNotFound"}
)
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})
UNREACHABLE_ERRORS = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProxyConnectionError",
    }
)


class StepFunctionsError(TrackerError):
    """Base of the failures reading or controlling Step Functions or CloudWatch Logs."""


class AwsUnreachableError(StepFunctionsError):
    """The AWS endpoint did not answer (wrong AWS_ENDPOINT_URL or region, or no network)."""


class AwsCredentialsError(ConfigurationError):
    """No usable AWS credentials were found."""


class MalformedArnError(StepFunctionsError):
    """An ARN given on the command line is not a state machine or execution ARN."""


class StateMachineNotFoundError(StepFunctionsError):
    """A state machine or execution ARN names nothing that exists."""


class NoStateMachinesError(StepFunctionsError):
    """The region has no state machines to track."""


class AccessDeniedError(StepFunctionsError):
    """The AWS credentials lack a permission the tracker needs."""


class MalformedDefinitionError(StepFunctionsError):
    """A definition is not an Amazon States Language object."""


class InvalidDefinitionError(StepFunctionsError):
    """Step Functions rejected a definition given to create or update a state machine."""


class RoleError(StepFunctionsError):
    """The execution role cannot be used by Step Functions."""


class ExecutionExistsError(StepFunctionsError):
    """An execution with the requested name already exists."""


class InconsistentHistoryError(StepFunctionsError):
    """An execution's history names a state its definition does not have."""


class MalformedLogMessageError(StepFunctionsError):
    """A CloudWatch Logs message is not a Step Functions execution event."""


class LogGroupNotFoundError(StepFunctionsError):
    """The log group to read does not exist."""


class AwsThrottledError(StepFunctionsError):
    """AWS kept throttling after every retry."""


class AwsRequestError(StepFunctionsError):
    """Any other refusal from AWS, with its code and message."""


def translate_aws_error(error: Exception, subject: str) -> Exception:
    """An AWS failure as the tracker's error type; anything that is not from botocore is returned as is."""
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(error, TrackerError):
        return error
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return AwsCredentialsError(
            "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(error, NoRegionError):
        return ConfigurationError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region")
    if type(error).__name__ in UNREACHABLE_ERRORS:
        endpoint = getattr(error, "kwargs", {}).get("endpoint_url") or "the AWS endpoint"
        return AwsUnreachableError(
            f"cannot reach {endpoint} for {subject}: {one_line(error)} "
            "(check AWS_ENDPOINT_URL, the region and the network)"
        )
    if not isinstance(error, ClientError):
        return error
    code = str(error.response.get("Error", {}).get("Code", ""))
    message = one_line(str(error.response.get("Error", {}).get("Message", "")))
    operation = getattr(error, "operation_name", "request")
    lowered = message.lower()
    if code == "InvalidDefinition" or "ASLParserException" in message:
        return InvalidDefinitionError(f"Step Functions rejected the definition: {message[:160]}")
    if "role" in lowered and (code == "InvalidArn" or code in ACCESS_DENIED_CODES):
        return RoleError(f"the execution role cannot be used: {message}")
    if code in ACCESS_DENIED_CODES or "not authorized" in lowered:
        return AccessDeniedError(
            f"access denied: AWS refused {operation} on {subject}; the credentials lack that permission"
        )
    if code == "ExecutionAlreadyExists":
        return ExecutionExistsError(f"{subject}: an execution with that name already exists ({message})")
    if code in NOT_FOUND_CODES:
        return StateMachineNotFoundError(f"{subject} does not exist ({code})")
    if code == "InvalidArn":
        return MalformedArnError(f"malformed ARN {subject}: {message}")
    if code == "ResourceNotFoundException" and "log group" in lowered:
        return LogGroupNotFoundError(f"{subject} does not exist")
    if code in THROTTLING_CODES:
        return AwsThrottledError(f"AWS throttled {operation} on {subject} after every retry: {message}")
    return AwsRequestError(f"AWS {operation} on {subject} failed: {code}: {message}")
