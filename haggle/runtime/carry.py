"""A service's one consumer group starts where its old per-topic groups stopped.

Until 2026-12-07 each (service, topic) had a consumer group of its own,
`<prefix>.<service>.<topic>`; now a service has one, `<prefix>.<service>`. A group without
committed offsets starts at each partition's earliest record, so without this the first start
after an upgrade would read a week of records again: the inbox skips what was handled, but a
record that was dead-lettered would be dead-lettered (or applied) a second time, and the command
topics would wait behind the replay. So before its first join, the group takes the offsets the
old groups committed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)


async def carry_offsets(bootstrap: str, group: str, old_groups: Mapping[str, str]) -> int:
    """Commit for `group` the offsets each old group (topic → group) committed on its topic, if
    `group` has none yet; how many partitions it took. A failure costs only the replay: it is
    logged, never raised."""
    try:
        carried = await _old_offsets(bootstrap, group, old_groups)
        if carried:
            await _commit(bootstrap, group, carried)
    except (KafkaError, OSError) as exc:
        log.warning("could not carry the old groups' offsets", extra={"group": group, "error": repr(exc)})
        return 0
    if carried:
        log.info("carried the old groups' offsets", extra={"group": group, "partitions": len(carried)})
    return len(carried)


async def _old_offsets(
    bootstrap: str, group: str, old_groups: Mapping[str, str]
) -> dict[TopicPartition, OffsetAndMetadata]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if await admin.list_consumer_group_offsets(group):
            return {}  # the group has its own offsets: it joined before, or another instance carried
        carried: dict[TopicPartition, OffsetAndMetadata] = {}
        for topic, old in old_groups.items():
            offsets = await admin.list_consumer_group_offsets(old)
            carried |= {tp: at for tp, at in offsets.items() if tp.topic == topic and at.offset >= 0}
        return carried
    finally:
        await admin.close()


async def _commit(bootstrap: str, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign(list(offsets))
        await committer.commit(dict(offsets))
    finally:
        await committer.stop()
