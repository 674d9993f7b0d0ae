"""nbgrader configuration for the course's labs.

``solutions/<lab>/<lab>.ipynb`` is the single source of every lab; ``make labs`` runs
``nbgrader generate_assignment`` to write the student version to ``labs/<lab>/``, then
``course_tools.grading.generate.finish_lab`` gives each stub below a message naming its part and the
function to write.
Grading (``make grade``) runs in its own folder outside the repository; nbgrader keeps the
gradebook, feedback and export there, while every submission runs in a bubblewrap sandbox
and is scored outside it (``course_tools/grading/``, ``docs/instructor.md``).
"""

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.course_id = "instruction-tuning-rlhf"
# Only the notebook is handed out; the solutions folder holds nothing else per lab.
c.CourseDirectory.include = ["*.ipynb"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
