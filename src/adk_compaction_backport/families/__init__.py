"""The wrappers the families table (``_guards``) names: shared ones in
``_common`` and ``_awaited``, the background-task releases' own in ``v1_16``."""
