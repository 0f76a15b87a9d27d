"""The desktop app (Qt only): windows, view-models (`libraries`, `browsing`), models/views,
delegates, workers and the typed client of their sessions (`client`).

Importing it applies `qtcompat.guard_singletons()`: PySide6 6.12's abi3 wheels return
None (and True / False) to Python without a new reference, which is harmless from
Python 3.12 on (those objects are immortal) but on 3.10 / 3.11 takes one reference from
None per call, until Python aborts ("deallocating None") after some thousands of calls.
"""

from albumtagger.app.qtcompat import guard_singletons

guard_singletons()
