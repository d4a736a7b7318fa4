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
