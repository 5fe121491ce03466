"""AWQ's default calibration text (written for braze, public domain), distinct from the evaluation
text in tests/data: about 4,000 tokens in varied registers (narrative, dialogue, encyclopedic
prose, instructions, code, shell and SQL, a letter, notes, questions and answers); AWQ reads its
first CALIBRATION_TOKENS (braze/quant/prepare.py) in windows of CALIBRATION_WINDOW."""

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

CALIBRATION_TEXT += '''
The night train to the coast left at a quarter past eleven, and by the time it had cleared the last
of the city's freight yards most of the passengers were asleep. Ines was not. She sat by the window
with her coat still buttoned, watching the lights of small stations slide past: a bench, a clock, a
man in an orange vest raising one hand as if to wave and then thinking better of it. Somewhere
behind her a child was humming the same four notes over and over. She had bought the ticket that
afternoon without telling anyone, and now that the decision was made, she found she could not
remember the reasons for it, only the feeling of relief when the clerk slid the card across the
counter. At two in the morning the train stopped for no reason she could see. The engine ticked in
the cold. A conductor walked the length of the carriage, checking nothing, and said to nobody in
particular, "Sheep on the line. Won't be long." It was forty minutes. When they moved again, the sky
to the east had begun to turn the color of weak tea, and the fields were full of low white mist.

"You're late," said the old man at the counter, without looking up from the radio he was mending.
"The sign says nine o'clock," Daniel said. "It's five past."
"The sign says we open at nine. It doesn't say I'm happy about it." He set down his screwdriver.
"What have you got?"
Daniel put the bicycle lamp on the counter. "It flickers. Then it goes out. Then, if you hit it, it
comes back on."
"Everything comes back on if you hit it. That's not a repair, that's a relationship." The man
unscrewed the back, tipped out two batteries, and peered inside. "Corrosion. See the green stuff on
the spring? You left it out in the rain."
"Once."
"Once is plenty." He scraped the spring with a small file, blew on it, and put the batteries back.
The lamp shone steadily. "No charge."
"Really?"
"Really. Next time, though, I'm charging you for the conversation."

The honey bee (Apis mellifera) is a social insect that lives in colonies of twenty to sixty
thousand workers, a single queen, and, during the warmer months, a few hundred males called drones.
Workers are sterile females whose duties change with age: young bees clean cells and feed larvae,
middle-aged bees build comb and guard the entrance, and the oldest bees forage for nectar, pollen,
water, and plant resins. A forager that finds a rich source of food returns to the hive and performs
a waggle dance, a figure-eight movement whose angle relative to vertical indicates the direction of
the source relative to the sun and whose duration indicates its distance. Honey is made by
evaporating nectar to a water content of about seventeen percent and adding enzymes that convert
sucrose into glucose and fructose. Because of its low moisture and high acidity, properly stored
honey resists spoilage for many years. Bees are important pollinators of fruit, nut, and seed crops;
declines in managed colonies since the early 2000s have been linked to parasites such as the Varroa
mite, viral diseases, pesticide exposure, and poor nutrition.

Glass is an amorphous solid, which means that its atoms lack the regular, repeating arrangement of a
crystal. Ordinary window glass is made by melting sand (silicon dioxide) together with soda ash and
limestone at temperatures around 1,500 degrees Celsius. The soda lowers the melting point, and the
lime makes the result resistant to water. In the float process, introduced in the 1950s, the molten
glass is poured onto a bath of liquid tin, where it spreads into a sheet with perfectly flat and
parallel surfaces. Borosilicate glass, which contains boron oxide, expands very little when heated
and is therefore used for laboratory vessels and ovenware. A popular story claims that old church
windows are thicker at the bottom because glass flows slowly over centuries; in fact, the panes were
uneven when they were made, and glaziers usually set the heavier edge at the bottom.

How to make a simple loaf of bread

You will need 500 g of strong white flour, 10 g of salt, 7 g of dried yeast, and about 320 ml of
lukewarm water.

1. Mix the flour, salt, and yeast in a large bowl. Keep the salt and yeast on opposite sides at first,
   because salt in direct contact can slow the yeast down.
2. Add most of the water and stir with a wooden spoon until a rough dough forms. Add the rest of the
   water a little at a time if dry flour remains at the bottom of the bowl.
3. Turn the dough onto a lightly floured surface and knead it for ten minutes, until it is smooth and
   springs back when pressed with a finger.
4. Return it to the bowl, cover it with a damp cloth, and leave it somewhere warm for an hour, or
   until it has doubled in size.
5. Knock it back, shape it into a loaf, and place it in a greased tin. Let it rise for another
   thirty to forty minutes.
6. Bake at 220 C for 30 minutes. The loaf is done when it sounds hollow when tapped underneath.
Tip: if the crust browns too quickly, cover the top loosely with foil for the last ten minutes.

Fixing a flat tire is easier than most cyclists expect. First, shift to the smallest rear sprocket,
open the brake if necessary, and remove the wheel. Push the valve up into the tire, then hook two
tire levers under the bead about ten centimeters apart and lever one side of the tire off the rim.
Pull out the inner tube. Before fitting a new one, run your fingers carefully around the inside of
the tire to find whatever caused the puncture; a small piece of glass or wire left there will simply
puncture the new tube. Inflate the new tube just enough to give it shape, tuck it into the tire, and
work the bead back over the rim with your thumbs, finishing at the valve. Pump it to the pressure
printed on the sidewall and check that the tire sits evenly all the way round.

def moving_average(values, window):
    """Return the mean of each run of `window` consecutive values.

    >>> moving_average([1, 2, 3, 4, 5], 2)
    [1.5, 2.5, 3.5, 4.5]
    """
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    total = sum(values[:window])
    result = [total / window]
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        result.append(total / window)
    return result


class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name: str, count: int = 1) -> None:
        self.items[name] = self.items.get(name, 0) + count

    def remove(self, name: str, count: int = 1) -> bool:
        if self.items.get(name, 0) < count:
            return False
        self.items[name] -= count
        return True

To install the tool and run its tests on a fresh machine:

    $ git clone https://example.org/tools/gauge.git
    $ cd gauge
    $ python -m venv .venv && source .venv/bin/activate
    $ pip install -e ".[test]"
    $ pytest -q tests/

If the last command fails with "ModuleNotFoundError: No module named 'gauge'", check that the virtual
environment is active (your prompt should begin with "(.venv)") and that you ran the install step
from the repository root. Configuration lives in a small file:

    [server]
    host = 127.0.0.1
    port = 8080
    timeout_seconds = 30

    [logging]
    level = "info"
    file = "/var/log/gauge.log"

Dear Aunt Rosa,

Thank you so much for the scarf. It arrived on Tuesday, the same morning the first real frost came,
so I have been wearing it ever since, and several people at work have asked where I bought it. I
told them it cannot be bought, which is true. The flat is finally in order. The kitchen is tiny, but
it has a window over the sink that looks onto a courtyard with a fig tree, and in the evenings a cat
from the building opposite sits on the wall and watches me wash up as if she were grading my work.
Work is busy. We are moving the whole office to a new building in March, and I have somehow been put
in charge of deciding where everybody sits, which is the fastest way I know to lose friends. I hope
your hip is better and that you are not climbing ladders to pick apples again. Mum says you are.
Please give my love to Uncle Peter, and tell him I still have not found a better recipe for
chutney than his.

With love, and hoping to visit at Easter,
Clara

The committee met on Thursday to discuss the proposal to close the Market Street bridge to cars on
weekends. Supporters argued that the change would make the riverside safer for families and bring
more customers to the cafes and shops on both banks. Opponents, including several delivery firms,
warned that traffic would simply move to the ring road, which is already congested on Saturday
mornings. After two hours of debate, members agreed to a six-month trial beginning in April, with
traffic counts and a survey of local businesses to be published before any permanent decision.

Q: Why does the moon always show the same face to the Earth?
A: Because it rotates exactly once for every orbit it makes. Over billions of years, tidal forces
from the Earth slowed the moon's spin until the two periods matched, a state called tidal locking.
The far side is not permanently dark, however; it receives as much sunlight as the near side.

Q: Is it true that we only use ten percent of our brains?
A: No. Brain imaging shows activity throughout the brain over the course of a day, and damage to
almost any region produces some noticeable effect. The myth probably grew from misquoted remarks by
early psychologists about unused human potential.

In the spring of the year the river flooded, my grandfather moved the chickens into the attic. It
seemed a reasonable idea at the time. The water rose to the second step of the stairs and stayed
there for four days, and the chickens, who had never in their lives been higher than the fence,
discovered the window. Neighbors rowing past in borrowed boats would look up to see six brown hens
lined along the sill like a row of judges. My grandmother never forgave him, not for the flood,
which was nobody's fault, but for the state of the attic afterwards. Years later, when I asked him
about it, he only said that a man must make decisions with the information he has, and that at the
time his information was that chickens cannot swim.

Photosynthesis is the process by which plants, algae, and some bacteria turn light energy into
chemical energy. In the light-dependent reactions, which take place in the thylakoid membranes of
the chloroplast, water molecules are split, oxygen is released, and the energy carriers ATP and
NADPH are produced. In the Calvin cycle, which takes place in the surrounding stroma, these carriers
are used to fix carbon dioxide from the air into three-carbon sugars. Roughly speaking, six molecules
of carbon dioxide and six of water yield one molecule of glucose and six of oxygen. Nearly all of
the oxygen in the atmosphere, and most of the energy in the food we eat, can be traced back to this
reaction.

Meeting notes, platform team, 14 October
- Attendees: Priya, Tom, Hassan, Mei (notes).
- The nightly build failed three times last week; all three were the same flaky network test. Tom
  will mark it as skipped on CI and open a ticket to replace the real server with a local stub.
- Disk usage on the build machines is at 87%. Hassan proposed deleting cached artifacts older than
  thirty days; agreed, starting Monday.
- Release 2.4 is on track for the 28th. Remaining blockers: the migration script for old config
  files and the updated user guide.
- Action items: Priya to review the migration script by Friday; Mei to circulate the draft guide.

It is easy to forget how recent the idea of a standard time is. Until the middle of the nineteenth
century, every town kept its own time, set by the sun at local noon, so that clocks in a city a
hundred miles to the west might run eight or nine minutes behind. This caused little trouble while
travel was slow. The railways changed that: a timetable listing arrivals in a dozen local times was
a recipe for missed connections and, worse, for collisions on single-track lines. Railway companies
adopted a single time along their routes, and within a few decades whole countries followed, and
then, by international agreement, the world was divided into time zones measured from Greenwich.

"Do you think it will hold?" Maya asked, looking at the rope.
"It held me," said her brother.
"You weigh about as much as a bag of flour."
"Then it will definitely hold you, because you weigh about as much as two bags of flour, and that
is only double." He paused. "Probably."
She tested the knot, then tested it again. Below them the stream ran fast and brown over the rocks,
and on the far bank their dog was barking as though the whole thing had been his idea.
"If I fall in," she said, "I'm telling Mum it was you."
"If you fall in, you'll be telling her from the bottom of the stream."
She swung. She did not fall in. On the far side she turned around, breathless and laughing, and
shouted that it was the best thing she had ever done, and then, more quietly, that they were never
doing it again.

Common units and their conversions: one inch is 2.54 centimeters; one mile is about 1.609
kilometers; one kilogram is about 2.205 pounds; one liter is about 1.057 US quarts. To convert a
temperature from Celsius to Fahrenheit, multiply by 9/5 and add 32, so 20 C is 68 F and 100 C is
212 F. To go the other way, subtract 32 and multiply by 5/9.

SELECT customer_id, COUNT(*) AS orders, SUM(total) AS revenue
FROM orders
WHERE created_at >= '2023-01-01'
GROUP BY customer_id
HAVING COUNT(*) > 5
ORDER BY revenue DESC
LIMIT 20;

The query above lists the twenty customers with the highest revenue among those who placed more
than five orders since the start of 2023. An index on (created_at, customer_id) lets the database
find the matching rows without scanning the whole table.

Every good argument has a shape. It begins with a claim that can be disputed, offers reasons that
a reasonable reader might accept, and then meets the strongest objection head on rather than the
weakest. Writers who skip the last step often sound confident and persuade no one, because the reader
has already thought of the objection and is waiting to see it answered. A single honest sentence,
such as "this approach costs more in the short run," can do more for a case than a page of praise.
'''
