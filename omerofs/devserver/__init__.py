"""An OMERO stand-in speaking the real Ice protocol, for tests and ``make demo``.

The unmodified omero-py client logs in and calls services over Ice TCP;
state persists in a data directory (see :mod:`.store`). Importing this
package does not import Ice: use :mod:`.server` to run one and
:mod:`.harness` to start one in a subprocess.
"""
