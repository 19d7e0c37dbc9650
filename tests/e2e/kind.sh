#!/usr/bin/env bash
# End-to-end check of the Helm chart on a local kind cluster, with moto as the AWS emulator.
#
# CI does not run this script: it needs Docker, kind, kubectl and helm, and pulls the rust and
# motoserver/moto images from Docker Hub. Run it by hand from the repository root:
#
#   tests/e2e/kind.sh            # creates the cluster, checks, deletes the cluster
#   KEEP_CLUSTER=1 tests/e2e/kind.sh   # leaves the cluster running for a look around
#
# It builds the controller image and starts moto in the cluster. It seeds a VPC with two
# instances to mirror, a sensor instance whose interface is the Traffic Mirror target, and a
# filter. Then it installs the chart pointed at moto, applies a policy, and waits until the
# policy is Ready with both interfaces mirrored.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${CLUSTER:-vpc-mirror-e2e}"
NAMESPACE=vpc-mirror-controller
IMAGE=vpc-mirror-controller:e2e
# The same moto version as requirements-dev.txt.
MOTO_IMAGE=motoserver/moto:5.2.5
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"

for tool in docker kind "$KUBECTL" "$HELM"; do
    command -v "$tool" >/dev/null || { echo "kind.sh: $tool is not installed" >&2; exit 1; }
done

cleanup() {
    if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
        kind delete cluster --name "$CLUSTER"
    fi
}
trap cleanup EXIT

echo "--- cluster and image"
kind create cluster --name "$CLUSTER" --wait 120s
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

echo "--- moto"
"$KUBECTL" create namespace "$NAMESPACE"
"$KUBECTL" -n "$NAMESPACE" create deployment moto --image="$MOTO_IMAGE" --port=5000
"$KUBECTL" -n "$NAMESPACE" expose deployment moto --port=5000
"$KUBECTL" -n "$NAMESPACE" rollout status deployment/moto --timeout=180s

# The moto image contains Python with boto3, so the seed runs inside it and needs no AWS CLI.
seed_output=$("$KUBECTL" -n "$NAMESPACE" exec -i deploy/moto -- python - <<'PY'
import boto3

ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url="http://127.0.0.1:5000",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]

def launch(instance_type, tags):
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    return ec2.run_instances(ImageId="ami-03cf127a", InstanceType=instance_type, MinCount=1, MaxCount=1,
                             SubnetId=subnet,
                             TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}])["Instances"][0]

sensor = launch("c5.xlarge", {"role": "sensor"})
target = ec2.create_traffic_mirror_target(NetworkInterfaceId=sensor["NetworkInterfaces"][0]["NetworkInterfaceId"])
mirror_filter = ec2.create_traffic_mirror_filter(Description="all traffic")
launch("m5.large", {"env": "e2e"})
launch("c5.large", {"env": "e2e"})
print(target["TrafficMirrorTarget"]["TrafficMirrorTargetId"], mirror_filter["TrafficMirrorFilter"]["TrafficMirrorFilterId"])
PY
)
read -r TARGET_ID FILTER_ID <<<"$seed_output"
echo "target $TARGET_ID, filter $FILTER_ID"

echo "--- helm install"
"$HELM" install vpc-mirror-controller charts/vpc-mirror-controller --namespace "$NAMESPACE" --wait --timeout 180s \
    --set image.repository=vpc-mirror-controller --set image.tag=e2e --set image.pullPolicy=Never \
    --set clusterName=e2e --set aws.region=us-east-1 \
    --set aws.endpointUrl="http://moto.$NAMESPACE.svc:5000" \
    --set resyncInterval=30s \
    --set 'extraEnv[0].name=AWS_ACCESS_KEY_ID' --set 'extraEnv[0].value=testing' \
    --set 'extraEnv[1].name=AWS_SECRET_ACCESS_KEY' --set 'extraEnv[1].value=testing'

echo "--- policy"
"$KUBECTL" apply -f - <<YAML
apiVersion: vpcmirror.dev/v1alpha1
kind: MirrorPolicy
metadata:
  name: e2e
spec:
  target: { id: $TARGET_ID }
  filter: { id: $FILTER_ID }
  selector:
    tags:
      matchLabels: { env: e2e }
YAML
if ! "$KUBECTL" wait --for=condition=Ready mirrorpolicy/e2e --timeout=180s; then
    "$KUBECTL" describe mirrorpolicy e2e
    "$KUBECTL" -n "$NAMESPACE" logs deploy/vpc-mirror-controller --tail=100
    exit 1
fi
"$KUBECTL" get mirrorpolicy e2e -o jsonpath='{.status.coverage}{"\n"}'

mirrored=$("$KUBECTL" get mirrorpolicy e2e -o jsonpath='{.status.coverage.mirrored}')
if [[ "$mirrored" != 2 ]]; then
    echo "kind.sh: expected 2 mirrored interfaces, the status reports ${mirrored:-none}" >&2
    exit 1
fi
echo "PASS: policy e2e is Ready with 2 of 2 interfaces mirrored"
