"""``python -m course_tools.grading labs|grade ...`` (``make labs``, ``make grade``): see
:mod:`course_tools.grading.cli`.

Imports: :mod:`course_tools.grading.cli` only.
"""

from course_tools.grading.cli import main

if __name__ == "__main__":
    main()
