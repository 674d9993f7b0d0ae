"""Class mode: a room labels together (chapter 09's widget) into one store, and its reward model trains live.

* ``server``: the class server (Starlette on uvicorn) over the room's SQLite store;
* ``room``: a room folder: store, join code, instructor key, the pairs to label;
* ``simulate``: a simulated class of many participants, the server killed midway, audited;
* ``dashboard``: the instructor's numbers (counts, agreement with gold, Fleiss' kappa) and
  the class reward model; ``dashboard.ipynb`` shows them live.

The participants' side, :class:`course_utils.alignment.class_store.ClassStore`, is in the
teaching package, because notebooks use it. Run ``python -m course_tools.classroom serve``
(``make class-server``); docs/instructor.md, *Class mode*, says how to run a room.
"""
