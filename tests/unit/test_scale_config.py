"""Several instances and a three-broker cluster, as configuration: ports, folders, replication."""

from __future__ import annotations

from pathlib import Path

import pytest

from haggle import procs
from haggle.contracts.topics import TOPICS, topic_configs
from haggle.infra import kafka
from haggle.infra.state import Settings
from haggle_lab.chaos.leaders import fully_replicated
from haggle_lab.chaos.work import handled


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HAGGLE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HAGGLE_KAFKA_PORT", "30092")
    monkeypatch.setenv("HAGGLE_KAFKA_CONTROLLER_PORT", "30093")
    monkeypatch.delenv("HAGGLE_KAFKA_BROKERS", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    return Settings.from_env()


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_a_single_broker_keeps_its_folder_ports_and_replication(settings: Settings) -> None:
    [node] = kafka.nodes(settings)
    assert (node.node_id, node.port, node.controller_port, node.dir) == (1, 30092, 30093, settings.kafka_dir)
    assert kafka.bootstrap_address(settings) == "127.0.0.1:30092"
    conf = properties(kafka.server_properties(settings, node, 1))
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:30093"
    assert conf["offsets.topic.replication.factor"] == "1" and conf["min.insync.replicas"] == "1"


def test_a_cluster_of_three_has_a_quorum_of_three_and_two_in_sync(settings: Settings) -> None:
    kafka.set_cluster_size(settings, 3)
    found = kafka.nodes(settings)
    assert [(n.node_id, n.port, n.controller_port) for n in found] == [
        (1, 30092, 30093),
        (2, 30192, 30193),
        (3, 30292, 30293),
    ]
    assert len({n.dir for n in found}) == 3 and all(n.dir.parent.name == "cluster" for n in found)
    assert kafka.bootstrap_address(settings) == "127.0.0.1:30092,127.0.0.1:30192,127.0.0.1:30292"
    conf = properties(kafka.server_properties(settings, found[1], 3))
    assert conf["node.id"] == "2"
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:30093,2@127.0.0.1:30193,3@127.0.0.1:30293"
    assert conf["listeners"] == "PLAINTEXT://127.0.0.1:30192,CONTROLLER://127.0.0.1:30193"
    assert conf["default.replication.factor"] == "3" and conf["min.insync.replicas"] == "2"
    assert conf["transaction.state.log.min.isr"] == "2"
    assert conf["unclean.leader.election.enable"] == "false"
    kafka.forget_cluster_size(settings)
    assert kafka.cluster_size(settings) == 1


def test_a_cluster_size_out_of_range_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(kafka.InfraError, match="--brokers"):
        kafka.set_cluster_size(settings, 0)
    for bad in ("nine", "0"):  # read with every other setting, and named
        monkeypatch.setenv("HAGGLE_KAFKA_BROKERS", bad)
        with pytest.raises(kafka.InfraError, match="HAGGLE_KAFKA_BROKERS"):
            Settings.from_env()
    monkeypatch.setenv("HAGGLE_KAFKA_BROKERS", "3")
    assert kafka.cluster_size(Settings.from_env()) == 3


def test_topics_need_two_in_sync_replicas_only_when_replicated_three_times() -> None:
    assert all("min.insync.replicas" not in config for config in topic_configs().values())
    three = topic_configs(3)
    assert all(config["min.insync.replicas"] == "2" for config in three.values())
    assert set(three) >= {t.name for t in TOPICS} | {t.dlq for t in TOPICS}


def test_instances_get_their_own_port_pid_file_and_log(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAGGLE_NEGOTIATION_PORT", "30102")
    assert procs.url_for("negotiation") == "http://127.0.0.1:30102"
    assert procs.url_for("negotiation", 2) == "http://127.0.0.1:30302"
    assert procs.log_path("negotiation", 1).name == "negotiation-1.log"
    assert procs.label("negotiation", 0) == "negotiation"
    (procs.log_path("negotiation").parent / "negotiation-1.pid").write_text("1\n")
    (procs.log_path("negotiation").parent / "negotiation.pid").write_text("1\n")
    (procs.log_path("negotiation").parent / "negotiation-other.pid").write_text("1\n")
    assert procs.instances("negotiation") == [0, 1]
    with pytest.raises(procs.InfraError, match="instance"):
        procs.start("negotiation", instance=procs.MAX_INSTANCES)


def test_handled_records_are_summed_over_topics_and_types() -> None:
    page = """# HELP haggle_messages_in_total Messages consumed
# TYPE haggle_messages_in_total counter
haggle_messages_in_total{service="negotiation",topic="negotiation.commands",type="PlaceOffer"} 7.0
haggle_messages_in_total{service="negotiation",topic="market.events",type="MarketOpened"} 2.0
haggle_messages_in_created{service="negotiation",topic="market.events",type="MarketOpened"} 1.7e9
haggle_messages_out_total{service="negotiation",topic="negotiation.events"} 40.0
"""
    assert handled(page) == 9.0


def test_a_cluster_is_fully_replicated_when_every_partition_has_all_its_replicas_in_sync() -> None:
    def view(brokers: tuple[int, ...], isr: tuple[int, ...]) -> kafka.ClusterView:
        return kafka.ClusterView(
            brokers, {("agent.inbox", 0): (isr[0], isr), ("agent.inbox", 1): (isr[-1], isr)}
        )

    assert fully_replicated(3)(view((1, 2, 3), (1, 2, 3)))
    assert not fully_replicated(3)(view((1, 2, 3), (1, 2)))  # a broker still catching up
    assert not fully_replicated(3)(view((1, 2), (1, 2)))  # one fenced: not listed
    assert fully_replicated(5)(view((1, 2, 3, 4, 5), (2, 4, 5)))  # three replicas of five brokers
    assert not fully_replicated(5)(view((1, 2, 3, 4, 5), (2, 4)))
