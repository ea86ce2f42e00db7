"""The fingerprint sums of queries.PLATE_FINGERPRINT, over the devserver's tables.

Each function computes, from the rows an OMERO database would hold, what the
HQL subqueries of :mod:`omerofs.gateway.queries` (``_LAYOUT_FINGERPRINT``,
``_FILES_FINGERPRINT``, ``_RENDERING_FINGERPRINT``) compute: the same rows,
the same terms, null for a sum of no rows. ``update_id`` is the row's
update Event (:meth:`Store.event`); rows written before the devserver
kept events read as event 0.

Where the devserver keeps less than OMERO, it answers for the rows OMERO
would have: every Pixels has ``sizeC`` Channels, each with its own
LogicalChannel (omero-server PixelsImpl.java:393-395); the devserver keeps
one ``channels`` row for both, so the Channel's and LogicalChannel's ids are
the ids it shows for channels elsewhere (``pixels id * 1000 + index``,
:func:`omerofs.devserver.model.pixels_description`), the Channel is never
updated (no IUpdate of a Channel here) and the LogicalChannel's update event
is the row's.
"""

from __future__ import annotations

from collections.abc import Callable

from ..gateway.queries import _K as K
from ..gateway.queries import _P as P
from .imagedata import binding_id, context_id
from .store import Store
from .store.rows import RenderingDefOfPlate


def _sum(terms: list[int]) -> int | None:
    """SQL's sum: null over no rows."""
    return sum(terms) if terms else None


def layout(store: Store, pid: int) -> tuple[int | None, int | None, int | None]:
    """(wells, fields and runs, images with pixels and channels) of a plate."""
    wells = _sum([w.id + (w.update_id or 0) * K for w in store.well_events(pid)])
    fields = _sum([
        f.id + (f.update_id or 0) * K + (f.idx + 1) * f.id + (f.well_id % P) * (f.id % P)
        + (f.run_id + (f.run_update_id or 0) * K if f.run_id is not None else 0)
        for f in store.field_events(pid)])
    channel_events = store.channel_events(pid)
    terms = []
    for img in store.image_events(pid):
        head = img.id + (img.update_id or 0) * K
        if img.pixels_id is None:
            terms.append(head)
            continue
        pxid = img.pixels_id
        head += pxid + (img.pixels_update_id or 0) * K
        for c in range(img.size_c or 0):
            cid = pxid * 1000 + c
            terms.append(head + cid + (c + 1) * cid + cid
                         + channel_events.get((pxid, c), 0) * K)
    return wells, fields, _sum(terms)


def files(store: Store, pid: int, readable: Callable[[str, int | None], bool]
          ) -> tuple[int | None, ...]:
    """(plate links, well links, image links, annotations with their files) of
    a plate's FileAnnotations; ``readable(owner, group)`` filters the links.
    Links to other annotation kinds (tags, comments, maps: ``kind`` set)
    are not summed, as the HQL joins FileAnnotation."""
    links = [[link for link in store.file_links(pid, kind)
              if readable(link.owner, link.group_id)]
             for kind in ("Plate", "Well", "Image")]
    linked = sorted({link.ann_id for of_kind in links for link in of_kind})
    anns = [a.ann_id + a.file_id + ((a.ann_update_id or 0) + (a.file_update_id or 0)) * K
            for a in store.annotation_file_events(linked)]
    return (*(_sum([link.id + (link.update_id or 0) * K for link in of_kind])
              for of_kind in links), _sum(anns))


def rendering(rows: list[RenderingDefOfPlate]) -> int | None:
    """The sum of queries._RENDERING_FINGERPRINT over the RenderingDefs it
    covers (``rows``, already narrowed to the session's user and the
    owners, once per field showing the image): a term per ChannelBinding,
    and per codomain context of it (the left outer join). The bindings and
    contexts are kept inside their RenderingDef's row: their update Event
    is the row's, or the binding's own once it was changed alone
    (Store.update_binding)."""
    terms = []
    for rd in rows:
        head = rd.id + rd.update_id * K
        for c, ch in enumerate(rd.data["channels"]):
            bid = binding_id(rd.id, c)
            event = ch.get("update_id", rd.update_id)
            binding = head + bid + (c + 1) * bid + event * K
            contexts = ch.get("contexts", [])
            if not contexts:
                terms.append(binding)
            for k in range(len(contexts)):
                cid = context_id(rd.id, c, k)
                terms.append(binding + cid + (k + 1) * cid + event * K)
    return _sum(terms)
