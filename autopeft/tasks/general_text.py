"""The fixed general-text sample on which forgetting is measured: how much fine-tuning raised the LM loss on
ordinary prose that has nothing to do with the task.

The sample was written for autopeft (no licence questions, nothing downloaded): short paragraphs of everyday
encyclopaedic English on unrelated topics. `general_text_rows` cuts its tokens into rows of `max_length`
tokens; every token but the first of a row is scored.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

GENERAL_TEXT = """\
Rivers shape the land they cross. Over thousands of years a river carries sand and silt from the hills to the \
sea, cutting valleys where the rock is soft and leaving waterfalls where it is hard. Where a river slows down \
near its mouth, it drops what it carries and builds a delta of flat, fertile ground.

Bread is one of the oldest prepared foods. Flour and water are mixed into a dough, and yeast turns some of the \
sugars into carbon dioxide, which makes the dough rise. Baking sets the structure, browns the crust and drives \
off most of the alcohol the yeast produced.

The heart is a muscle about the size of a fist. It beats around seventy times a minute at rest, pushing blood \
through the lungs, where it picks up oxygen, and then through the rest of the body. Regular exercise makes the \
heart stronger and lowers the resting rate.

Libraries have kept written records for more than four thousand years. Early collections held clay tablets and \
scrolls; later ones held bound books, newspapers and maps. Today many libraries also lend music, films and \
access to computers, and they remain quiet places to read and study.

The Moon has no light of its own. It reflects sunlight, and as it travels around the Earth each month we see \
different parts of its lit half, from a thin crescent to a full disc. The same pull of gravity that keeps it in \
orbit raises the tides of the oceans twice a day.

A good map leaves things out. It shows the roads, rivers and towns a traveller needs and drops the rest, and it \
uses a scale so that distances on paper match distances on the ground. Contour lines join points of equal \
height, so closely spaced lines mean a steep slope.

Bees visit flowers to collect nectar and pollen. As they move from one flower to the next they carry pollen \
with them, which allows many plants to make seeds and fruit. A single colony can hold tens of thousands of \
workers, a few hundred drones and one queen.

Trains changed how people thought about time. Before railways, each town kept its own local time set by the \
sun. Timetables needed clocks that agreed along the whole line, and so countries adopted standard time zones \
in the second half of the nineteenth century.

Glass is made by melting sand with soda and lime and cooling the mixture quickly, so that it hardens without \
forming crystals. It can be blown, pressed, rolled into sheets or drawn into fibres thin enough to carry light \
across oceans.

Most people sleep for about a third of their lives. During sleep the body repairs tissue, the brain sorts the \
memories of the day, and the levels of many hormones rise and fall. Going to bed and waking at regular hours \
helps people fall asleep more easily.
"""


def general_text_rows(
    tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The sample's tokens in consecutive rows of at most `max_length`, each as (ids, labels = ids)."""
    ids = list(tokenizer(GENERAL_TEXT, add_special_tokens=False)["input_ids"])
    rows = [tuple(ids[start : start + max_length]) for start in range(0, len(ids), max_length)]
    return [(row, row) for row in rows if len(row) > 1]
