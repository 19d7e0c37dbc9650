"""The `make demo` walk-through: a fleet in moto, mirrored, broken and healed.

It starts moto on a free loopback port, seeds a fleet and runs the controller once with
examples/policies/. Then another tool deletes one owned session and retargets another, and
`plan` shows what the next reconcile will do. The controller then runs in the background: its
region pass at start heals both, and with periodic resync off it heals new instances and a
deleted session from EventBridge messages in SQS alone. Every process it starts is stopped
before it exits.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

import demo_events

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
OWNER_POLICY_TAG = "vpcmirror.dev/policy"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not respond within {timeout} s")
        time.sleep(0.1)


def heading(text: str) -> None:
    print(f"\n=== {text}\n", flush=True)


def seed(ec2) -> dict:
    """Creates the demo fleet and returns the ids the walk-through needs later."""
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    # An image of moto 5.2.5's built-in list; listing all images takes moto about two seconds.
    image = "ami-03cf127a"

    def launch(name, instance_type, tags, interfaces=1):
        tag_list = [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in tags.items()]
        instance = ec2.run_instances(
            ImageId=image,
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
        )["Instances"][0]
        for device_index in range(1, interfaces):
            eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
            ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance["InstanceId"], DeviceIndex=device_index)
        return instance["InstanceId"], instance["NetworkInterfaces"][0]["NetworkInterfaceId"]

    web_tier = {"env": "prod", "team": "web"}
    api_tier = {"env": "prod", "team": "api"}
    db_tier = {"env": "prod", "team": "db"}

    # The IDS sensor: its interface is the mirror target, and it carries the web tier's tags.
    _, sensor_eni = launch("ids-sensor", "c5.xlarge", {**web_tier, "role": "sensor"})
    target = ec2.create_traffic_mirror_target(NetworkInterfaceId=sensor_eni, Description="IDS sensor")["TrafficMirrorTarget"]["TrafficMirrorTargetId"]
    other_target = ec2.create_traffic_mirror_target(
        NetworkLoadBalancerArn=f"arn:aws:elasticloadbalancing:{REGION}:123456789012:loadbalancer/net/apm/0123456789abcdef",
        Description="APM collector of another team",
    )["TrafficMirrorTarget"]["TrafficMirrorTargetId"]
    mirror_filter = ec2.create_traffic_mirror_filter(Description="all traffic")["TrafficMirrorFilter"]["TrafficMirrorFilterId"]
    # No filter rules: moto 5.2.5 responds to CreateTrafficMirrorFilterRule with an HTTP 500, and
    # the controller only needs the filter to exist.

    launch("web-1", "m5.large", web_tier, interfaces=2)
    launch("web-2", "m5.large", web_tier, interfaces=3)
    _, web3_eni = launch("web-3", "c5.large", web_tier)
    launch("web-4", "t2.micro", web_tier)
    launch("web-5", "m6i.large", web_tier, interfaces=2)
    launch("api-1", "m5.xlarge", api_tier, interfaces=2)
    _, api2_eni = launch("api-2", "r5.large", api_tier)
    launch("api-3", "t3.medium", api_tier)
    launch("api-4", "c7g.large", api_tier)
    launch("db-1", "r5.large", db_tier, interfaces=2)
    launch("db-2", "r5.xlarge", db_tier)
    launch("db-3", "i3.large", db_tier)
    launch("db-4", "m5.metal", db_tier)
    launch("dev-1", "m5.large", {"env": "dev", "team": "web"})

    # Sessions of another team: one to its own collector (left alone, ours takes number 2),
    # one to our target already (counted as mirrored and left alone).
    ec2.create_traffic_mirror_session(
        NetworkInterfaceId=web3_eni, TrafficMirrorTargetId=other_target, TrafficMirrorFilterId=mirror_filter,
        SessionNumber=1, Description="APM team session",
    )
    ec2.create_traffic_mirror_session(
        NetworkInterfaceId=api2_eni, TrafficMirrorTargetId=target, TrafficMirrorFilterId=mirror_filter,
        SessionNumber=5, Description="hand-made session to the IDS",
    )
    print(f"Seeded 15 instances in {vpc}: target {target} (the sensor's interface), filter {mirror_filter},")
    print(f"another team's target {other_target} with a session on {web3_eni}, and a hand-made session on {api2_eni}.")
    return {"target": target, "other_target": other_target}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def aws_calls(metrics: str) -> dict:
    """Returns vpcmirror_aws_calls_total by operation, summed over outcomes."""
    calls = {}
    for line in metrics.splitlines():
        if line.startswith("vpcmirror_aws_calls_total{"):
            labels, value = line.rsplit(" ", 1)
            operation = labels.split('operation="', 1)[1].split('"', 1)[0]
            calls[operation] = calls.get(operation, 0) + int(float(value))
    return calls


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def send_and_measure(sqs, queue_url: str, metrics_url: str, body: str, done, label: str) -> bool:
    """Sends one message, waits until `done()` holds, and prints the AWS calls it cost."""
    before = aws_calls(scrape(metrics_url))
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    healed = wait_until(done, timeout=30)
    # The consumer deletes the message right after its writes; give that call a moment.
    time.sleep(0.5)
    after = aws_calls(scrape(metrics_url))
    cost = {op: after.get(op, 0) - before.get(op, 0) for op in after if after.get(op, 0) != before.get(op, 0)}
    ec2_cost = ", ".join(f"{op} {n}" for op, n in sorted(cost.items()) if not op.endswith(("Message", "MessageBatch")))
    sqs_cost = ", ".join(f"{op} {n}" for op, n in sorted(cost.items()) if op.endswith(("Message", "MessageBatch")))
    print(f"{label}: {'healed' if healed else 'NOT healed'}; EC2 calls: {ec2_cost or 'none'}; SQS calls: {sqs_cost or 'none'}")
    return healed


def event_act(ec2, sqs, queue_url: str, metrics_url: str, ids: dict) -> bool:
    subnet = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["10.20.1.0/24"]}])["Subnets"][0]["SubnetId"]
    launched = ec2.run_instances(
        ImageId="ami-03cf127a", InstanceType="m5.large", MinCount=2, MaxCount=2, SubnetId=subnet,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "api"}]}],
    )["Instances"]
    new_enis = [eni["NetworkInterfaceId"] for instance in launched for eni in instance["NetworkInterfaces"]]
    print(f"Launched {', '.join(i['InstanceId'] for i in launched)} without telling the controller.")
    ok = send_and_measure(
        sqs, queue_url, metrics_url,
        demo_events.run_instances(REGION, launched),
        lambda: all(ec2.describe_traffic_mirror_sessions(Filters=[{"Name": "network-interface-id", "Values": [eni]}])["TrafficMirrorSessions"] for eni in new_enis),
        "RunInstances (2 instances)",
    )

    victim = owned_sessions(ec2, "prod-web")[0]
    ec2.delete_traffic_mirror_session(TrafficMirrorSessionId=victim["TrafficMirrorSessionId"])
    print(f"Deleted {victim['TrafficMirrorSessionId']} on {victim['NetworkInterfaceId']}.")
    ok = send_and_measure(
        sqs, queue_url, metrics_url,
        demo_events.delete_traffic_mirror_session(REGION, victim["TrafficMirrorSessionId"]),
        lambda: any(s["NetworkInterfaceId"] == victim["NetworkInterfaceId"] for s in owned_sessions(ec2, "prod-web")),
        "DeleteTrafficMirrorSession",
    ) and ok

    before = scrape(metrics_url)
    sqs.send_message(QueueUrl=queue_url, MessageBody="this is not an EventBridge message")
    wait_until(lambda: scrape(metrics_url) != before and "vpcmirror_event_messages_invalid_total" in scrape(metrics_url), timeout=30)
    for line in scrape(metrics_url).splitlines():
        if line.startswith(("vpcmirror_event_messages_", "vpcmirror_heal_latency_seconds_count")):
            print(line)
    return ok


def owned_sessions(ec2, policy: str) -> list:
    sessions = ec2.describe_traffic_mirror_sessions()["TrafficMirrorSessions"]
    return [s for s in sessions if {"Key": OWNER_POLICY_TAG, "Value": policy} in s.get("Tags", [])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="path of the vpc-mirror-controller binary")
    args = parser.parse_args()

    moto_port = free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION, RUST_LOG="warn")
    env.pop("AWS_PROFILE", None)
    started = []
    moto = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "moto_server.py"), "--port", str(moto_port), "--fixed-mirror-ids"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started.append(moto)
    try:
        wait_for_http(f"{endpoint}/moto-api/", timeout=30)
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        controller = [args.binary]
        common = ["--aws-endpoint-url", endpoint, "--policies", str(ROOT / "examples" / "policies")]

        heading(f"1. A fleet in moto on {endpoint}")
        ids = seed(ec2)

        heading("2. First reconcile: vpc-mirror-controller run --once --policies examples/policies")
        subprocess.run(controller + ["run", "--once", "--metrics-addr", "off"] + common, env=env, check=True)

        heading("3. Drift: another tool deletes one owned session and retargets another")
        web_sessions = owned_sessions(ec2, "prod-web")
        deleted, modified = web_sessions[0], web_sessions[1]
        ec2.delete_traffic_mirror_session(TrafficMirrorSessionId=deleted["TrafficMirrorSessionId"])
        print(f"Deleted {deleted['TrafficMirrorSessionId']} on {deleted['NetworkInterfaceId']}")
        ec2.modify_traffic_mirror_session(
            TrafficMirrorSessionId=modified["TrafficMirrorSessionId"], TrafficMirrorTargetId=ids["other_target"], Description="borrowed by the APM team"
        )
        print(f"Modified {modified['TrafficMirrorSessionId']} on {modified['NetworkInterfaceId']}: target {ids['other_target']}, new description")

        heading("4. vpc-mirror-controller plan: what the next reconcile will do (changes nothing)")
        subprocess.run(controller + ["plan"] + common, env=env, check=True)

        heading("5. The controller in the background: a region pass at start, then events only")
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        queue_url = sqs.create_queue(QueueName="vpc-mirror-events")["QueueUrl"]
        metrics_port = free_port()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        run = subprocess.Popen(
            controller
            + ["run", "--resync-interval", "0s", "--sqs-queue-url", queue_url, "--metrics-addr", f"127.0.0.1:{metrics_port}"]
            + common,
            env=env,
        )
        started.append(run)
        wait_for_http(f"http://127.0.0.1:{metrics_port}/readyz", timeout=30)

        heading("6. Healed by the region pass")
        sessions = {s["NetworkInterfaceId"]: s for s in owned_sessions(ec2, "prod-web")}
        recreated = sessions.get(deleted["NetworkInterfaceId"])
        repaired = sessions.get(modified["NetworkInterfaceId"])
        healed = True
        if recreated and recreated["TrafficMirrorTargetId"] == ids["target"]:
            print(f"{deleted['NetworkInterfaceId']}: new session {recreated['TrafficMirrorSessionId']} to {ids['target']}")
        else:
            print(f"{deleted['NetworkInterfaceId']}: NOT healed")
            healed = False
        if repaired and repaired["TrafficMirrorTargetId"] == ids["target"] and repaired["Description"] == modified["Description"]:
            print(f"{modified['NetworkInterfaceId']}: session {repaired['TrafficMirrorSessionId']} back to {ids['target']} and its description")
        else:
            print(f"{modified['NetworkInterfaceId']}: NOT repaired: {repaired}")
            healed = False

        heading("7. A few metrics from /metrics")
        wanted = ("vpcmirror_policy_coverage_ratio", "vpcmirror_sessions_", "vpcmirror_policy_network_interfaces{policy=\"prod-web\"")
        for line in scrape(metrics_url).splitlines():
            if line.startswith(wanted) or (line.startswith("vpcmirror_aws_calls_total") and "Traffic" in line):
                print(line)

        heading("8. Events alone: periodic resync is off, EventBridge messages arrive in SQS")
        healed = event_act(ec2, sqs, queue_url, metrics_url, ids) and healed

        run.send_signal(signal.SIGTERM)
        run.wait(timeout=30)
        left = int(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
        print(f"\nController stopped on SIGTERM; {left} messages left in the queue.")
        return 0 if healed else 1
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    sys.exit(main())
