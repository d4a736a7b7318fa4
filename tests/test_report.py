from emoji_ae.metrics import accuracy_interval, confusion_records, wrong_emoji
from stages.report import errors_by_emoji


def image(emoji: str, actual: str, predicted: str) -> dict:
    return {"actual": actual, "predicted": predicted, "emoji": emoji}


def test_wrong_predictions_are_listed_per_emoji_the_most_first():
    confusion = ([image("devil face", "face", "animal")] + [image("devil face", "face", "face")] * 2
                 + [image("dog face", "animal", "face")] * 3 + [image("dog face", "animal", "animal")]
                 + [image("grinning face", "face", "face")] * 4)
    line = errors_by_emoji(confusion)
    assert line.startswith("The 4 wrong predictions fall on 2 of the 3 test emoji")
    assert line.endswith(": dog face 3 of 4 (animal, read as face); devil face 1 of 3 (face, read as animal).")


def test_a_classifier_without_errors_gets_one_sentence():
    confusion = [image("dog face", "animal", "animal"), image("grinning face", "face", "face")]
    assert errors_by_emoji(confusion) == "Every test image is classified correctly."


def test_confusion_records_name_the_classes_and_only_wrong_emoji_are_listed():
    confusion = confusion_records([0, 1, 1], [0, 1, 0], ["dog face", "grinning face", "devil face"], ["animal", "face"])
    assert confusion == [image("dog face", "animal", "animal"), image("grinning face", "face", "face"),
                         image("devil face", "face", "animal")]
    assert wrong_emoji(confusion) == "devil face 1 of 1 (face, read as animal)"
    assert wrong_emoji(confusion[:2]) == ""


def test_the_accuracy_interval_resamples_whole_emoji():
    # 10 emoji of 5 images each; one is wrong on every image: 90% accuracy.
    confusion = [image(f"emoji {i}", "face", "animal" if i == 0 else "face") for i in range(10) for _ in range(5)]
    low, high = accuracy_interval(confusion, seed=0)
    # Resampling emoji, the wrong one appears 0 to 3+ times in a draw of 10; resampling the 50 images
    # independently would give a much narrower interval.
    assert low <= 0.7 and high == 1.0
    assert accuracy_interval(confusion, seed=0) == (low, high)


def test_a_classifier_right_on_every_emoji_gets_a_point_interval():
    confusion = [image(f"emoji {i}", "face", "face") for i in range(4) for _ in range(3)]
    assert accuracy_interval(confusion, seed=0) == (1.0, 1.0)
