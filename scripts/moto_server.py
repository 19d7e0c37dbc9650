"""Start moto's server with AWS-shaped Traffic Mirroring ids.

moto 5.2.5 names targets traf-mir-tar-... and filters traf-mir-fil-..., where AWS uses tmt-...
and tmf-...; the MirrorPolicy schema accepts only the AWS shapes. This launcher changes the
prefixes before the server starts. With --fixed-mirror-ids, targets and filters are numbered
tmt-00000000000000001, tmt-00000000000000002, ... so that example policies can name them.

Usage: python moto_server.py --port PORT [--fixed-mirror-ids]
"""

import argparse
import itertools

import moto.ec2.models.traffic_mirrors as traffic_mirrors
import moto.ec2.utils as ec2_utils
import moto.server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 to listen on")
    parser.add_argument(
        "--fixed-mirror-ids",
        action="store_true",
        help="number targets and filters from 1 instead of drawing random ids",
    )
    args = parser.parse_args()

    ec2_utils.EC2_RESOURCE_TO_PREFIX["traffic-mirror-target"] = "tmt"
    ec2_utils.EC2_RESOURCE_TO_PREFIX["traffic-mirror-filter"] = "tmf"
    if args.fixed_mirror_ids:
        targets = itertools.count(1)
        filters = itertools.count(1)
        # The models module imported these functions by name, so they are replaced there.
        traffic_mirrors.random_traffic_mirror_target_id = lambda: f"tmt-{next(targets):017x}"
        traffic_mirrors.random_traffic_mirror_filter_id = lambda: f"tmf-{next(filters):017x}"

    moto.server.main(["--host", "127.0.0.1", "--port", str(args.port)])


if __name__ == "__main__":
    main()
