"""The load tests' payloads: review-like texts for sentiment and (question, context, answer) triples for QA.

Everything here is this project's own writing. Sentences and facts are hand-written (the places, people and
companies are invented) and composed with a seeded RNG into texts from a few words to several paragraphs, so
the corpus is the same on every run and every machine. Some sentiment texts run past the model's 512 tokens
(the service truncates them); some QA contexts run past one 384-token window (the service reads several).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = 20240611


@dataclass(frozen=True)
class QAItem:
    question: str
    context: str
    answer: str  # a span of `context` that answers `question`


# ---------------------------------------------------------------------------------------------------------
# Sentiment
# ---------------------------------------------------------------------------------------------------------

SHORT_POSITIVE = [
    "a gorgeous, moving film",
    "Loved every minute.",
    "best pho in town",
    "Works exactly as described.",
    "Five stars, would stay again.",
    "sharp, funny and surprisingly tender",
    "The battery lasts forever.",
    "an absolute joy from start to finish",
    "Friendly staff and spotless rooms.",
    "I could not put it down.",
    "worth every penny",
    "A confident, beautifully shot debut.",
    "Great value for money.",
    "The sound is crisp and the bass is tight.",
    "a small miracle of a book",
    "Delicious, generous portions.",
]

SHORT_NEGATIVE = [
    "awful.",
    "a dull, lifeless mess",
    "Broke after two days.",
    "cold food, rude waiter",
    "Never again.",
    "the plot makes no sense at all",
    "overpriced and underwhelming",
    "The room smelled of smoke.",
    "I want those two hours back.",
    "Customer service never replied.",
    "flat, tinny sound",
    "a tedious slog",
    "The app crashes constantly.",
    "Too long by an hour.",
    "stale bread and watery soup",
    "Not worth the hype.",
]

# Per domain: scene-setting sentences (no opinion), then positive and negative sentences.
DOMAINS: dict[str, dict[str, list[str]]] = {
    "film": {
        "setting": [
            "I saw it at a late showing on a Friday, with a half-full room.",
            "I went in knowing nothing beyond the poster.",
            "My partner picked this one, and I am not usually a fan of the genre.",
            "It runs a little over two hours, including a long prologue.",
            "We watched it at home over two evenings.",
        ],
        "positive": [
            "The lead gives a performance of real restraint, and every small gesture lands.",
            "The script trusts the audience and never explains a joke twice.",
            "The score swells at exactly the right moments without ever telling you what to feel.",
            "Every frame is composed with care, and the night scenes in the harbour are stunning.",
            "The pacing is patient but never slow; I did not check my watch once.",
            "The supporting cast is terrific, especially the grandmother, who steals every scene she is in.",
            "It is funny, then heartbreaking, then funny again, and it earns both.",
            "The final twenty minutes are as tense as anything I have seen this year.",
            "The dialogue sounds like people actually talking, which is rarer than it should be.",
            "I walked out of the cinema smiling and have thought about it every day since.",
        ],
        "negative": [
            "The lead seems bored in every scene, and the chemistry with the co-star is nonexistent.",
            "The plot depends on characters making one baffling decision after another.",
            "The music is so loud that it drowns out half of the dialogue.",
            "The editing is choppy, and several scenes end before they have begun.",
            "At two and a half hours it is at least forty minutes too long.",
            "The jokes are stale, and the few good ones were all in the trailer.",
            "The villain is a cardboard cut-out whose motives are never explained.",
            "The ending throws away everything the first hour set up.",
            "The special effects look unfinished, as if the money ran out halfway through.",
            "I nearly fell asleep during the second act, and I was not the only one.",
        ],
    },
    "restaurant": {
        "setting": [
            "We booked a table for four on a Saturday evening.",
            "We came here for my sister's birthday after reading a couple of reviews.",
            "It is a small place on a side street, with maybe twelve tables.",
            "I ordered the tasting menu and my friend went with the set lunch.",
            "We walked in without a reservation around eight o'clock.",
        ],
        "positive": [
            "The bread arrived warm, with a salted butter that we could have eaten on its own.",
            "Every dish was seasoned with care, and the lamb was cooked exactly as we asked.",
            "Our waiter knew the wine list by heart and steered us to a bottle that was perfect and cheap.",
            "The portions were generous without being silly, and nothing on the plate was there for show.",
            "The dessert, a burnt honey tart, was the best thing I have eaten in months.",
            "Service was quick and friendly even though the room was completely full.",
            "Prices are fair for the quality, and the lunch menu is a genuine bargain.",
            "The kitchen happily adapted two dishes for a guest with a nut allergy.",
            "The room is cosy and quiet enough to hold a conversation.",
            "We left full and happy and have already booked again for next month.",
        ],
        "negative": [
            "We waited forty minutes for our starters, and nobody apologised.",
            "The soup was lukewarm and tasted mostly of salt.",
            "My steak came well done even though I asked for medium rare.",
            "The waiter rolled his eyes when we asked about the specials.",
            "The bill included a service charge for a service we never really received.",
            "The dining room was so loud that we had to shout across the table.",
            "The fish smelled off, and the chips were soggy and pale.",
            "The table was sticky and the cutlery had not been washed properly.",
            "For these prices I expected far more than a few leaves and a smear of sauce.",
            "We left hungry and stopped for a sandwich on the way home.",
        ],
    },
    "headphones": {
        "setting": [
            "I bought these for my daily train commute, about an hour each way.",
            "I have been using them for roughly three weeks now.",
            "They replaced a pair I had owned for five years.",
            "I mostly listen to podcasts and some jazz.",
            "I use them for video calls at work as well as for music.",
        ],
        "positive": [
            "The noise cancelling is excellent and silences the train almost completely.",
            "Battery life is superb; I charge them once a week at most.",
            "They are light and comfortable even after a whole afternoon of calls.",
            "The sound is detailed and warm, with bass that never gets muddy.",
            "Pairing with my phone and laptop took seconds, and switching between them just works.",
            "The microphone is clear, and colleagues say I sound better than on my old headset.",
            "The case is compact and feels sturdy enough to survive a rucksack.",
            "The touch controls are intuitive once you get used to them.",
            "For the price they easily match pairs that cost twice as much.",
            "I would buy them again without thinking twice.",
        ],
        "negative": [
            "The left earcup started crackling after two weeks.",
            "The battery drains overnight even when they are switched off.",
            "They press on my ears so hard that I get a headache within an hour.",
            "The sound is thin, with harsh treble and almost no bass.",
            "The connection drops whenever my phone is in my back pocket.",
            "The companion app is buggy and keeps asking me to create an account.",
            "The microphone picks up every bit of wind and traffic around me.",
            "The hinge cracked the first time I folded them.",
            "Support took ten days to reply and then sent a canned answer.",
            "I returned them and went back to my old pair.",
        ],
    },
    "hotel": {
        "setting": [
            "We stayed three nights in a double room on the fourth floor.",
            "I was in town for a conference and booked through the hotel's own website.",
            "The hotel is a ten-minute walk from the central station.",
            "We arrived late, a little after midnight, after a delayed flight.",
            "It was our first trip away since the baby was born.",
        ],
        "positive": [
            "The room was spotless, and the bed was one of the most comfortable I have ever slept in.",
            "The staff at the front desk remembered our names from the second day.",
            "Breakfast was excellent, with fresh pastries and eggs cooked to order.",
            "The view over the old town from our balcony was worth the price on its own.",
            "Check-in took two minutes, and they let us into the room early.",
            "The shower had strong, hot water, and the towels were thick and soft.",
            "It was quiet at night despite being so central.",
            "The concierge found us a table at a restaurant that had told us it was fully booked.",
            "Everything worked, from the wifi to the air conditioning.",
            "We are already planning to come back in the spring.",
        ],
        "negative": [
            "The room was much smaller than the photos suggested, and the carpet was stained.",
            "The air conditioning rattled all night and could not be switched off.",
            "Reception lost our booking and then tried to charge us twice.",
            "Breakfast was a sad buffet of dry rolls and lukewarm coffee.",
            "We could hear every word from the room next door.",
            "There was hair in the shower, and the towels smelled damp.",
            "The wifi worked only in the lobby, and barely there.",
            "Our request for a quiet room was ignored; we faced the bins and the delivery bay.",
            "Parking cost a fortune and was not mentioned when we booked.",
            "I would not stay here again even at half the price.",
        ],
    },
    "book": {
        "setting": [
            "I read this over a long weekend.",
            "A friend lent me her copy with a note saying I had to read it.",
            "It is the third book in the series, but it stands on its own.",
            "I listened to the audiobook on my walks to work.",
            "Our book club picked it for this month.",
        ],
        "positive": [
            "The prose is clean and precise, and some of the sentences are simply beautiful.",
            "The characters feel like people I have known for years.",
            "The structure, with its two timelines, comes together in a way I did not see coming.",
            "It is a slim book, but it says more than many novels three times its length.",
            "The research is impeccable, yet it never feels like a history lesson.",
            "I laughed out loud on the bus more than once.",
            "The ending is quiet, earned and exactly right.",
            "The translation reads as if it had been written in English.",
            "I stayed up far too late to finish it.",
            "It is the best thing I have read this year.",
        ],
        "negative": [
            "The prose is overwritten, with three adjectives where none would do.",
            "I never believed a single one of the characters.",
            "The middle third drags terribly and could have been cut entirely.",
            "The twist is obvious from the first chapter.",
            "The dialogue is stilted, and everyone speaks in the same voice.",
            "It reads like a first draft that nobody bothered to edit.",
            "The historical details are wrong in ways that pulled me right out of the story.",
            "The ending simply stops, as if the author ran out of ideas.",
            "I finished it only because it was for book club.",
            "I cannot understand why this one was shortlisted for anything.",
        ],
    },
}

OPENERS = {
    "positive": ["Honestly, I was impressed.", "What a pleasant surprise.", "I did not expect to love it this much."],
    "negative": ["I really wanted to like this.", "What a disappointment.", "I do not usually write bad reviews."],
}
CLOSERS = {
    "positive": ["Highly recommended.", "Go, you will not regret it.", "Ten out of ten.", "A real treat."],
    "negative": ["Save your money.", "Avoid.", "One star, and that is generous.", "Not for me, and not for you."],
}
MIXED = [
    "That said, it is not perfect.",
    "To be fair, there were a few good moments.",
    "It is not all bad, though.",
    "I have some reservations, however.",
]


def _review(rng: random.Random, domain: str, polarity: str, sentences: int) -> str:
    """One review: scene-setting, mostly one polarity with the odd contrary remark, an opinionated close."""
    pool = DOMAINS[domain]
    other = "negative" if polarity == "positive" else "positive"
    main = rng.sample(pool[polarity][:-1], sentences - 1) + [pool[polarity][-1]]  # the last one is a verdict
    body = [rng.choice(pool["setting"])] + main
    if sentences >= 4 and rng.random() < 0.5:  # a contrary aside, like real reviews
        body.insert(rng.randrange(2, len(body)), rng.choice(MIXED) + " " + rng.choice(pool[other][:-1]))
    if rng.random() < 0.4:
        body.insert(0, rng.choice(OPENERS[polarity]))
    body.append(rng.choice(CLOSERS[polarity]))
    return " ".join(body)


def _long_review(rng: random.Random, domain: str, polarity: str, paragraphs: int) -> str:
    """Two or three paragraphs of one experience, with one contrary aside in the middle."""
    pool = DOMAINS[domain]
    other = "negative" if polarity == "positive" else "positive"
    main = rng.sample(pool[polarity][:-1], 9)  # the last sentence of each pool is a verdict: kept for the end
    settings = rng.sample(pool["setting"], paragraphs)
    out = []
    for p in range(paragraphs):
        sentences = [settings[p]] + main[p * 9 // paragraphs : (p + 1) * 9 // paragraphs]
        if p == paragraphs // 2:
            sentences += [rng.choice(MIXED), rng.choice(pool[other][:-1])]
        out.append(" ".join(sentences))
    out[-1] += f" {pool[polarity][-1]} {rng.choice(CLOSERS[polarity])}"
    return "\n\n".join(out)


TRIP_INTROS = [
    "We spent a long weekend in the city for our anniversary, and I promised myself I would write it all up.",
    "This is a long one, so bear with me: a week away, new headphones, a hotel, a lot of dinners and a novel.",
    "My sister and I finally took the trip we had been talking about for years.",
]


def _trip_report(rng: random.Random, polarity: str) -> str:
    """A travel write-up over three topics, well past the model's 512 tokens: the service truncates it."""
    out = [rng.choice(TRIP_INTROS)]
    topics = (("headphones", "On the journey"), ("hotel", "The hotel"), ("restaurant", "Food"), ("book", "Reading"))
    for domain, lead in topics:
        pool = DOMAINS[domain]
        sentences = [rng.choice(pool["setting"])] + rng.sample(pool[polarity][:-1], 9) + [pool[polarity][-1]]
        out.append(f"{lead}: " + " ".join(sentences))
    out.append(rng.choice(CLOSERS[polarity]))
    return "\n\n".join(out)


def _sentiment_texts() -> list[str]:
    rng = random.Random(SEED)
    texts = list(SHORT_POSITIVE) + list(SHORT_NEGATIVE)
    domains = sorted(DOMAINS)
    for polarity in ("positive", "negative"):  # single sentences, each used once
        texts += [s for d in domains for s in rng.sample(DOMAINS[d][polarity][:-1], 3)]
    for i in range(50):  # one paragraph
        texts.append(_review(rng, domains[i % 5], ("positive", "negative")[i // 5 % 2], rng.randint(2, 6)))
    for i in range(12):  # several paragraphs
        texts.append(_long_review(rng, domains[i % 5], ("positive", "negative")[i % 2], rng.choice([2, 3])))
    for i in range(6):  # longer than the model reads
        texts.append(_trip_report(rng, ("positive", "negative")[i % 2]))
    return texts


# ---------------------------------------------------------------------------------------------------------
# Question answering
# ---------------------------------------------------------------------------------------------------------


def _facts(**values: str) -> dict[str, str]:
    return values


TOWNS = [
    _facts(name="Harrowgate Mills", river="Wendle", city="Castlebridge", direction="north", distance="24",
         founder="Thomas Aske", trade="wool", year="1612", rail_year="1847", landmark="Corn Exchange",
         architect="Eliza Marwood", landmark_year="1868", festival="Lantern Fair", month="October",
         population="18,400", industry="precision engineering"),
    _facts(name="Port Anselm", river="Esk", city="Marbury", direction="west", distance="60",
         founder="Anselm Rouse", trade="herring", year="1540", rail_year="1862", landmark="Customs House",
         architect="Jacob Penhale", landmark_year="1791", festival="Blessing of the Boats", month="June",
         population="9,250", industry="ferry services and boatbuilding"),
    _facts(name="Vellmoor", river="Tarrow", city="Ashford Regis", direction="east", distance="15",
         founder="Margaret Vell", trade="leather", year="1703", rail_year="1851", landmark="Vellmoor Viaduct",
         architect="Samuel Ockenden", landmark_year="1849", festival="Cheese and Cider Show", month="September",
         population="31,700", industry="food processing"),
    _facts(name="Esterbrook", river="Lune", city="Hallam Cross", direction="south", distance="38",
         founder="the Cistercian monks of Rievaulx Priory", trade="salt", year="1188", rail_year="1872",
         landmark="Priory Bridge", architect="Henry Lascelles", landmark_year="1774", festival="Midsummer Regatta",
         month="July", population="6,120", industry="tourism"),
    _facts(name="Quarry Ridge", river="Colne", city="Dunmere", direction="north-west", distance="42",
         founder="the Pellow family", trade="slate", year="1766", rail_year="1859", landmark="Miners' Institute",
         architect="Agnes Trevail", landmark_year="1903", festival="Brass Band Contest", month="May",
         population="12,860", industry="stone and building materials"),
    _facts(name="Tallis Bay", river="Maddon", city="Kingsport", direction="south-east", distance="30",
         founder="Robert Tallis", trade="oyster", year="1655", rail_year="1881", landmark="Winter Gardens",
         architect="Clement Hardy", landmark_year="1896", festival="Oyster Festival", month="August",
         population="22,300", industry="hospitality and fishing"),
    _facts(name="Ravensholme", river="Aire", city="Beckford", direction="west", distance="19",
         founder="Walter de Ravens", trade="iron", year="1292", rail_year="1846", landmark="Cloth Hall",
         architect="Isaac Brandreth", landmark_year="1779", festival="Rushbearing", month="August",
         population="44,900", industry="textiles and logistics"),
    _facts(name="Kelby St Ann", river="Swale", city="Northam", direction="east", distance="55",
         founder="the Augustinian canons of St Ann", trade="barley", year="1234", rail_year="1868",
         landmark="Maltings", architect="Frances Wilde", landmark_year="1882", festival="Barley Feast",
         month="March", population="4,480", industry="brewing and agriculture"),
]  # fmt: skip

TOWN_PARAGRAPHS = [
    "{name} is a market town on the {river}, about {distance} kilometres {direction} of {city}. It was founded in "
    "{year} by {founder}, who obtained a charter for a weekly market at the ford where the old drove road crossed "
    "the river.",
    "For most of its history the town lived on the {trade} trade. Merchants built warehouses along the quay, and "
    "by the end of the eighteenth century {name} was one of the busiest towns in the county. The railway reached "
    "{name} in {rail_year}, which brought new industries and a rapid growth in population, although it also "
    "ended the river trade within a generation.",
    "The best-known building in the town is the {landmark}, designed by the architect {architect} and completed "
    "in {landmark_year}. It was restored after a fire in the 1970s and now houses the town museum, the tourist "
    "office and a small concert hall.",
    "Today the largest employers are in {industry}, together with the district council and the hospital. "
    "Like many towns of its size, {name} has lost shops from its high street, but the weekly market still runs "
    "every Thursday, as it has for centuries.",
    "The town is best known outside the region for the {festival}, which is held every year in {month} and draws "
    "visitors from across the country. The celebrations include a procession through the old town, music in the "
    "market square and a fireworks display on the river.",
    "At the most recent census, {name} had a population of {population}. The town has two secondary schools, a "
    "further-education college and a library that was rebuilt in 2009.",
]
FILLER_PARAGRAPHS = [
    "The climate is mild and wet, with most of the rain falling between October and January. Snow is rare and "
    "seldom lies for more than a day or two, but the river floods the low meadows to the south of the town "
    "most winters, and the flood defences along the quay were raised after a severe flood in 2007.",
    "Buses run every half hour to {city}, and there are hourly trains on the branch line. The town centre is "
    "compact and mostly pedestrianised, and a cycle path follows the old towpath along the {river} for several "
    "kilometres. A bypass, opened in 1994, keeps most heavy traffic out of the narrow streets of the old town.",
    "The parish church, dedicated to St Michael, has a fifteenth-century tower and a fine set of medieval "
    "misericords. There are also Methodist and Catholic churches, a Quaker meeting house and a small mosque "
    "that opened in a former chapel in 2015.",
    "The local football club plays in the regional league at a ground by the river, and the cricket club, "
    "founded in the 1850s, is one of the oldest in the county. Rowing has been popular since Victorian times, "
    "and the rowing club's boathouse is a familiar sight from the bridge.",
    "Several writers and painters have lived in the town. The landscape painter who gave his name to the small "
    "gallery on Bridge Street worked here for thirty years, and a local poet's collection about the river "
    "towns won a national prize in the 1960s. The gallery holds exhibitions of local artists every summer.",
    "Much of the old town is a conservation area. The narrow lanes running down to the river still follow "
    "their medieval plots, and many of the brick fronts along them hide timber-framed houses that are far "
    "older. A heritage trail, marked by small bronze plaques set into the pavement, links the most important "
    "buildings and takes about an hour to walk.",
    "Since 1972 the town has been twinned with a small port in Brittany, and school exchanges between the two "
    "have run almost every year since. A twinning association organises visits, language evenings and a stall "
    "at the Christmas market, where cider and crêpes from the twin town sell out within hours.",
]
TOWN_QUESTIONS = [  # (question, answer key, paragraphs needed to hold the answer)
    ("Who founded {name}?", "founder", 1),
    ("In what year was {name} founded?", "year", 1),
    ("When did the railway reach {name}?", "rail_year", 2),
    ("Who designed the {landmark}?", "architect", 3),
    ("In which month is the {festival} held?", "month", 5),
    ("What is the population of {name}?", "population", 6),
    ("Which trade did {name} live on for most of its history?", "trade", 2),
    ("What are the largest employers in {name} today?", "industry", 4),
]

PEOPLE = [
    _facts(name="Ada Kessler", born="1871", died="1948", nationality="Austrian", field="chemist",
         university="the University of Graz", discovery="a method for purifying rare-earth salts",
         prize="the Liebig Medal", prize_year="1912", city="Vienna", institute="the Radium Institute"),
    _facts(name="Tomas Vrba", born="1902", died="1977", nationality="Czech", field="engineer",
         university="the Czech Technical University", discovery="a lightweight concrete shell for roofs",
         prize="the Royal Gold Medal", prize_year="1961", city="Brno", institute="the Brno Building Research Office"),
    _facts(name="Mirela Sandu", born="1925", died="2011", nationality="Romanian", field="mathematician",
         university="the University of Bucharest", discovery="an algorithm for scheduling railway timetables",
         prize="the Lagrange Prize", prize_year="1983", city="Cluj", institute="the Computing Centre of Cluj"),
    _facts(name="Oskar Lindqvist", born="1889", died="1960", nationality="Swedish", field="physicist",
         university="Uppsala University", discovery="an early photoelectric light meter",
         prize="the Rumford Medal", prize_year="1934", city="Gothenburg", institute="the Chalmers laboratory"),
    _facts(name="Nadia Farouk", born="1938", died="2019", nationality="Egyptian", field="geologist",
         university="Cairo University", discovery="the fossil beds of the Wadi Sannur escarpment",
         prize="the Wollaston Medal", prize_year="1996", city="Alexandria", institute="the Desert Research Centre"),
    _facts(name="Henri Lacombe", born="1854", died="1921", nationality="French", field="botanist",
         university="the University of Montpellier", discovery="a blight-resistant rootstock for vines",
         prize="the Montyon Prize", prize_year="1893", city="Bordeaux", institute="the Bordeaux botanical garden"),
]  # fmt: skip

PERSON_PARAGRAPHS = [
    "{name} ({born}–{died}) was a {nationality} {field} best known for {discovery}.",
    "Born in {city}, {name} studied at {university}, where an unusually patient teacher encouraged the habit of "
    "keeping careful notebooks. After graduating, {name} spent several years in industry before taking a post "
    "at {institute}, which remained the centre of the work for the rest of a long career.",
    "The work on {discovery} began almost by accident, as a side project while investigating a problem that "
    "had defeated several colleagues. It took more than a decade to become widely accepted, but it is now "
    "described in every standard textbook of the field.",
    "In {prize_year}, {name} was awarded {prize}, and later served on the editorial boards of two journals. "
    "Colleagues remembered a generous mentor who answered every letter by hand.",
]
PERSON_QUESTIONS = [
    ("What is {name} best known for?", "discovery", 1),
    ("Where did {name} study?", "university", 2),
    ("Which prize was {name} awarded in {prize_year}?", "prize", 4),
    ("When was {name} awarded {prize}?", "prize_year", 4),
]

COMPANIES = [
    _facts(name="Brightwater Instruments", year="1968", founders="Ruth Amery and Daniel Osei", city="Leeds",
         product="a handheld water-quality meter", employees="1,300", hq="a converted mill in Saltaire",
         acquirer="Halden Group", acquired="2015"),
    _facts(name="Norrfjord Bicycles", year="1993", founders="two brothers, Erik and Lars Holm", city="Trondheim",
         product="a folding cargo bike", employees="420", hq="the old harbour district of Trondheim",
         acquirer="Velora", acquired="2021"),
    _facts(name="Casa Mendes", year="1921", founders="Joaquim Mendes", city="Porto",
         product="tinned sardines in olive oil", employees="280", hq="the same riverside cannery where it began",
         acquirer="a family trust", acquired="1987"),
    _facts(name="Kestrel Software", year="2004", founders="Priya Raman and Owen Tate", city="Edinburgh",
         product="an open-source scheduling library", employees="95", hq="a shared office near Waverley station",
         acquirer="Northline Systems", acquired="2019"),
]  # fmt: skip

COMPANY_PARAGRAPHS = [
    "{name} was founded in {year} in {city} by {founders}. Its first and still best-known product is {product}.",
    "The company grew slowly during its first years, selling mostly through specialist shops and word of mouth. "
    "A contract with a national retailer changed that, and within five years its products were sold in more "
    "than thirty countries.",
    "{name} employs about {employees} people and has its headquarters in {hq}. In {acquired} it was acquired by "
    "{acquirer}, but it kept its name, its management and its own product range.",
]
COMPANY_QUESTIONS = [
    ("Who founded {name}?", "founders", 1),
    ("What is the best-known product of {name}?", "product", 1),
    ("Who acquired {name}?", "acquirer", 3),
    ("How many people does {name} employ?", "employees", 3),
]

ONE_SENTENCE = [
    ("When was the Marlow Viaduct completed?", "The Marlow Viaduct was completed in 1861.", "1861"),
    ("What colour is the ferry?", "The little ferry to Holm Island is painted bright yellow.", "bright yellow"),
    ("Who wrote The Salt Road?", "The Salt Road is a novel by Iris Penmarric, published in 1954.", "Iris Penmarric"),
    ("How tall is the Kirkwall Light?", "The Kirkwall Light stands 38 metres above the rocks.", "38 metres"),
    ("What does the shop sell?", "The shop on the corner of Mill Lane sells secondhand maps and atlases.",
     "secondhand maps and atlases"),
    ("Where does the night train terminate?", "The night train leaves at eleven and terminates in Inverness.",
     "Inverness"),
    ("How long is the tunnel?", "At 4.2 kilometres, the Cardle Tunnel is the longest on the line.",
     "4.2 kilometres"),
    ("Who painted the ceiling?", "The ceiling of the old library was painted by Luca Berardi in 1730.",
     "Luca Berardi"),
    ("What is the bridge made of?", "The footbridge over the Wendle is made of cast iron.", "cast iron"),
    ("When does the market open?", "The covered market opens at seven every morning except Sunday.",
     "seven every morning"),
    ("Which river flows through Dunmere?", "Dunmere lies in a narrow valley cut by the river Colne.", "Colne"),
    ("What is the museum's most famous exhibit?",
     "The museum's most famous exhibit is a Bronze Age gold collar found by a ploughman in 1911.",
     "a Bronze Age gold collar"),
]  # fmt: skip


def _qa_items() -> list[QAItem]:
    rng = random.Random(SEED + 1)
    items = [QAItem(q, c, a) for q, c, a in ONE_SENTENCE]
    for i, town in enumerate(TOWNS):
        # Each town answers three questions over three context lengths: the paragraphs up to the answer, the
        # whole article, and the whole article padded with filler paragraphs (several 384-token windows).
        for j, (question, key, needs) in enumerate(rng.sample(TOWN_QUESTIONS, 3)):
            paragraphs = [p.format(**town) for p in TOWN_PARAGRAPHS]
            if j == 0:
                paragraphs = paragraphs[:needs]
            elif j == 2 or i % 3 == 0:
                fillers = [f.format(**town) for f in rng.sample(FILLER_PARAGRAPHS, 5 + i % 3 if j == 2 else 3)]
                for filler in fillers:
                    paragraphs.insert(rng.randrange(1, len(paragraphs)), filler)
            items.append(QAItem(question.format(**town), "\n\n".join(paragraphs), town[key]))
    for i, person in enumerate(PEOPLE):
        for j, (question, key, needs) in enumerate(rng.sample(PERSON_QUESTIONS, 2)):
            paragraphs = [p.format(**person) for p in PERSON_PARAGRAPHS]
            items.append(QAItem(question.format(**person), "\n\n".join(paragraphs[: max(needs, 1 + (i + j) % 4)]),
                                person[key]))  # fmt: skip
    for company in COMPANIES:
        for question, key, needs in rng.sample(COMPANY_QUESTIONS, 2):
            paragraphs = [p.format(**company) for p in COMPANY_PARAGRAPHS]
            items.append(QAItem(question.format(**company), "\n\n".join(paragraphs[: max(needs, 2)]), company[key]))
    return items


SENTIMENT_TEXTS: list[str] = _sentiment_texts()
QA_ITEMS: list[QAItem] = _qa_items()
