"""AWQ's default calibration text: a few paragraphs of plain English (written for braze, public
domain), distinct from the evaluation text in tests/data."""

CALIBRATION_TEXT = """\
The kettle had been whistling for a full minute before anyone in the kitchen noticed it. Margaret was
bent over the table with a pencil behind her ear, working through the household accounts, and her
brother Thomas was reading aloud from a newspaper about the price of wheat in the northern counties.
When the sound finally reached them, they both stood up at once, bumped elbows, and laughed.

Every town has a few streets that seem older than the rest. In ours it was the lane that ran down
from the church to the river, paved with uneven stones and lined with houses whose upper floors leaned
out over the road. Children were told not to play there after dark, though nobody could say exactly
why. The baker kept his shop at the bottom of the lane, and in the early morning the smell of bread
drifted all the way up to the churchyard.

A good explanation begins with what the listener already knows. If you want to describe how a pump
lifts water, start with a drinking straw: when you draw the air out, the pressure of the atmosphere
pushes the liquid up to fill the space. A pump does the same thing with a piston and a pair of valves,
one that lets water in and another that keeps it from flowing back. Engineers in the eighteenth century
used such pumps to drain mines, and the need for stronger ones led directly to the steam engine.

Questions about the weather are the oldest small talk in the world. Will it rain tomorrow? Farmers
watched the color of the evening sky, the flight of swallows, and the ache in an old knee. Today we
have satellites, balloons, and computers that solve equations for the motion of air over the whole
planet, yet a forecast more than a week ahead is still little better than a guess. The atmosphere is
a chaotic system: small differences in the starting conditions grow until they dominate the result.

She wrote to him every Sunday for eleven years. The letters were short, mostly news of the garden,
the neighbors, and the dog, but each one ended with the same line: "Come home when you are ready."
He kept them in a tin box under his bed, and when he finally did come home, he brought the box with him.
"""
