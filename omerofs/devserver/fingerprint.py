"""The fingerprint sums of queries.PLATE_FINGERPRINT, over the devserver's tables.

Each function computes, from the rows an OMERO database would hold, what the
HQL subqueries of :mod:`omerofs.gateway.queries` (``_LAYOUT_FINGERPRINT``,
``_FILES_FINGERPRINT``) compute: the same rows, the same terms, null for a
sum of no rows. ``update_id`` is the row's update Event (:meth:`Store.event`);
rows written before the devserver kept events read as event 0.

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
from .store import Store


def _sum(terms: list[int]) -> int | None:
    """SQL's sum: null over no rows."""
    return sum(terms) if terms else None


def layout(store: Store, pid: int) -> tuple[int | None, int | None, int | None]:
    """(wells, fields and runs, images with pixels and channels) of a plate."""
    wells = _sum([wid + (upd or 0) * K for wid, upd in store.query(
        "select id, update_id from wells where plate_id = ?", (pid,))])
    fields = _sum([
        sid + (supd or 0) * K + (idx + 1) * sid + (wid % P) * (sid % P)
        + (rid + (rupd or 0) * K if rid is not None else 0)
        for sid, supd, idx, wid, rid, rupd in store.query(
            "select ws.id, ws.update_id, ws.idx, w.id, pa.id, pa.update_id from wells w"
            " join well_samples ws on ws.well_id = w.id"
            " left join plate_acquisitions pa on pa.id = ws.run_id where w.plate_id = ?",
            (pid,))])
    channel_events = {(px, c): upd or 0 for px, c, upd in store.query(
        "select c.pixels_id, c.idx, c.update_id from channels c join pixels p"
        " on p.id = c.pixels_id join well_samples ws on ws.image_id = p.image_id"
        " join wells w on w.id = ws.well_id where w.plate_id = ?", (pid,))}
    terms = []
    for iid, iupd, pxid, pxupd, size_c in store.query(
            "select i.id, i.update_id, p.id, p.update_id, p.size_c from wells w"
            " join well_samples ws on ws.well_id = w.id join images i on i.id = ws.image_id"
            " left join pixels p on p.image_id = i.id where w.plate_id = ?", (pid,)):
        head = iid + (iupd or 0) * K
        if pxid is None:
            terms.append(head)
            continue
        head += pxid + (pxupd or 0) * K
        for c in range(size_c):
            cid = pxid * 1000 + c
            terms.append(head + cid + (c + 1) * cid + cid
                         + channel_events.get((pxid, c), 0) * K)
    return wells, fields, _sum(terms)


def files(store: Store, pid: int, readable: Callable[[str, int], bool]
          ) -> tuple[int | None, ...]:
    """(plate links, well links, image links, annotations with their files) of
    a plate's FileAnnotations; ``readable(owner, group)`` filters the links.
    Links to other annotation kinds (tags, comments, maps: ``kind`` set)
    are not summed, as the HQL joins FileAnnotation."""
    files_only = " and l.ann_id in (select id from annotations where kind is null)"
    plate_links = [(lid, upd, aid) for lid, upd, aid, owner, gid in store.query(
        "select id, update_id, ann_id, owner, group_id from links l"
        " where parent_type = 'Plate' and parent_id = ?" + files_only, (pid,))
        if readable(owner, gid)]
    well_links = [(lid, upd, aid) for lid, upd, aid, owner, gid in store.query(
        "select l.id, l.update_id, l.ann_id, l.owner, l.group_id from links l"
        " join wells w on w.id = l.parent_id where l.parent_type = 'Well' and w.plate_id = ?"
        + files_only, (pid,)) if readable(owner, gid)]
    # one row per (link, field showing its image), as the HQL theta join
    image_links = [(lid, upd, aid) for lid, upd, aid, owner, gid in store.query(
        "select l.id, l.update_id, l.ann_id, l.owner, l.group_id from links l"
        " join well_samples ws on ws.image_id = l.parent_id join wells w on w.id = ws.well_id"
        " where l.parent_type = 'Image' and w.plate_id = ?" + files_only, (pid,))
        if readable(owner, gid)]
    linked = sorted({aid for links in (plate_links, well_links, image_links)
                     for _, _, aid in links})
    anns: list[int] = []
    if linked:
        marks = ",".join("?" * len(linked))
        anns = [aid + fid + ((aupd or 0) + (fupd or 0)) * K
                for aid, aupd, fid, fupd in store.query(
                    "select a.id, a.update_id, f.id, f.update_id from annotations a"
                    " join files f on f.id = a.file_id where a.id in (" + marks + ")",
                    tuple(linked))]
    return (*(_sum([lid + (upd or 0) * K for lid, upd, _ in links])
              for links in (plate_links, well_links, image_links)), _sum(anns))
