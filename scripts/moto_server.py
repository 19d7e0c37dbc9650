"""Start moto's server with AWS-shaped Traffic Mirroring ids.

moto 5.2.5 names targets traf-mir-tar-... and filters traf-mir-fil-..., where AWS uses tmt-...
and tmf-...; the MirrorPolicy schema accepts only the AWS shapes. This launcher changes the
prefixes before the server starts. With --fixed-mirror-ids, targets and filters are numbered
tmt-00000000000000001, tmt-00000000000000002, ... so that example policies can name them.

With --exit-with-parent, the server stops when the process that started it ends, so a test
binary that shares one server between its tests never leaves it running.

Usage: python moto_server.py --port PORT [--fixed-mirror-ids] [--exit-with-parent]
"""

import argparse
import itertools
import os
import threading
import time

import moto.ec2.models.traffic_mirrors as traffic_mirrors
import moto.ec2.utils as ec2_utils
import moto.server


def exit_with_parent(parent: int) -> None:
    """Ends this process once `parent` is gone; the orphan is then adopted by another process."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 to listen on")
    parser.add_argument(
        "--fixed-mirror-ids",
        action="store_true",
        help="number targets and filters from 1 instead of drawing random ids",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process ends",
    )
    args = parser.parse_args()

    if args.exit_with_parent:
        threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()

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
