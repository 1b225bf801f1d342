"""docker stats from a real cgroup v2 (inside the test VM): the cgroup's files, read by
``sampan.cgroups``, turned into dockerd's JSON by ``sampan.engine.stats``."""

from __future__ import annotations

import os

import pytest

from sampan.cgroups import CgroupV2
from sampan.oci.spec import Memory, Pids, Resources

from ..cgroups.conformance import MB, Factory, Processes, Suite, factory

pytestmark = pytest.mark.vm


@pytest.fixture
def new_cgroup() -> object:
    with factory(lambda path: CgroupV2("/sys/fs/cgroup", path)) as f:
        yield f


class TestDockerStatsV2(Suite):
    def test_docker_shape_from_real_files(self, new_cgroup: Factory,
                                          procs: Processes) -> None:
        from sampan.engine import stats
        from sampan.engine.record import Container

        cg = new_cgroup()
        cg.set(Resources(memory=Memory(limit=64 * MB), pids=Pids(limit=10)))
        procs.ready(cg, "import time\nx = b'x' * (8 << 20)\nopen('/tmp/f', 'wb').write("
                        "b'y' * (4 << 20))\nprint('ready', flush=True)\ntime.sleep(120)")
        c = Container(id="c" * 64, name="web", created="", image="", image_id="", path="",
                      args=[], config={}, host_config={})
        machine = stats.host_memory()
        doc = stats.convert(c, cg.stats(), v2=True, system=stats.system_cpu_usage(),
                            online=os.cpu_count() or 1, machine=machine, net=None)
        memory = doc["memory_stats"]
        assert memory["limit"] == 64 * MB
        assert memory["usage"] >= 8 * MB
        assert "max_usage" not in memory and "failcnt" not in memory  # v1 only, as dockerd
        assert memory["stats"]["anon"] >= 8 * MB
        assert "inactive_file" in memory["stats"]  # what the CLI subtracts on v2
        cpu = doc["cpu_stats"]
        assert cpu["cpu_usage"]["total_usage"] > 0
        assert "percpu_usage" not in cpu["cpu_usage"]
        assert cpu["system_cpu_usage"] > cpu["cpu_usage"]["total_usage"]
        assert doc["pids_stats"] == {"current": 1, "limit": 10}
        assert isinstance(doc["blkio_stats"]["io_service_bytes_recursive"], (list, type(None)))

    def test_unlimited_memory_reports_the_host(self, new_cgroup: Factory,
                                               procs: Processes) -> None:
        from sampan.engine import stats
        from sampan.engine.record import Container

        cg = new_cgroup()
        procs.ready(cg, "import time\nprint('ready', flush=True)\ntime.sleep(120)")
        c = Container(id="c" * 64, name="web", created="", image="", image_id="", path="",
                      args=[], config={}, host_config={})
        doc = stats.convert(c, cg.stats(), v2=True, system=1, online=1,
                            machine=stats.host_memory(), net=None)
        assert doc["memory_stats"]["limit"] == stats.host_memory()
