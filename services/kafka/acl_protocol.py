"""CreateAcls on aiokafka's admin connection: the one ACL request Breakwater sends (part of the boundary).

aiokafka 0.14's ``AIOKafkaAdminClient`` has no ``create_acls``/``describe_acls``; its protocol module has
the CreateAcls request (one binding a request), which the admin client's private ``_send_request`` sends
to any broker. ``tests/unit/kafka/test_internals.py`` checks both are still there.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

ALLOW = 3
ANY_HOST = "*"


async def create_acl(
    admin: AIOKafkaAdminClient, resource_type: int, name: str, pattern: int, principal: str, operation: int
) -> tuple[int, str | None]:
    """Allow ``principal`` ``operation`` on the resource from any host; the broker's error code and message.

    Creating an ACL that exists already succeeds and changes nothing.
    """
    request = CreateAclsRequest(resource_type, name, pattern, principal, ANY_HOST, operation, ALLOW)
    response = await admin._send_request(request)
    code, message = response.creation_responses[0][:2]
    return int(code), message
