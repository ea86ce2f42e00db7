"""omerofs: mount OMERO high-content-screening plates as a filesystem of TIFFs."""

__version__ = "0.1.0"
