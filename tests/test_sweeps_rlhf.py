"""The chapter-10 sweep's helper that counts answers repeating a word."""

from course_utils.experiments.sweeps_rlhf import repeats_a_word


def test_repeats_a_word():
    assert repeats_a_word("The coat is good and good.")
    assert repeats_a_word("The nice dog is nice and nice and nice.")
    assert not repeats_a_word("The dog is lovely and friendly.")
    assert not repeats_a_word("The happy dog runs in the park.")   # 'the' twice does not count
