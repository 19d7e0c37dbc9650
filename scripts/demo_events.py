"""EventBridge messages shaped like real ones, for the demo's event act.

Each function returns one SQS message body as EventBridge delivers it: an envelope around a
CloudTrail record. Only the fields the controller reads are filled in with real ids; the rest
follows the layout of real records with invented values.
"""

import json
import uuid
from datetime import datetime, timezone

ACCOUNT = "123456789012"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cloudtrail(region: str, event_name: str, request: dict, response: dict) -> str:
    now = _now()
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.ec2",
            "account": ACCOUNT,
            "time": now,
            "region": region,
            "resources": [],
            "detail": {
                "eventVersion": "1.09",
                "eventTime": now,
                "eventSource": "ec2.amazonaws.com",
                "eventName": event_name,
                "awsRegion": region,
                "requestParameters": request,
                "responseElements": response,
                "eventType": "AwsApiCall",
                "recipientAccountId": ACCOUNT,
            },
        }
    )


def run_instances(region: str, instances: list) -> str:
    """RunInstances for instances given as dicts with InstanceId and NetworkInterfaces."""
    items = []
    for instance in instances:
        interfaces = [
            {"networkInterfaceId": eni["NetworkInterfaceId"], "attachment": {"deviceIndex": eni["Attachment"]["DeviceIndex"]}}
            for eni in instance["NetworkInterfaces"]
        ]
        items.append(
            {
                "instanceId": instance["InstanceId"],
                "instanceType": instance["InstanceType"],
                "instanceState": {"code": 0, "name": "pending"},
                "networkInterfaceSet": {"items": interfaces},
            }
        )
    request = {"instancesSet": {"items": [{"minCount": len(items), "maxCount": len(items)}]}}
    response = {"reservationId": "r-0f1e2d3c4b5a69788", "ownerId": ACCOUNT, "instancesSet": {"items": items}}
    return _cloudtrail(region, "RunInstances", request, response)


def delete_traffic_mirror_session(region: str, session_id: str) -> str:
    request = {"DeleteTrafficMirrorSessionRequest": {"TrafficMirrorSessionId": session_id}}
    response = {"DeleteTrafficMirrorSessionResponse": {"trafficMirrorSessionId": session_id}}
    return _cloudtrail(region, "DeleteTrafficMirrorSession", request, response)
