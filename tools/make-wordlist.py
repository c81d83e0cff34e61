#!/usr/bin/env python3
"""Generate src/core/wordlist.c: the 2048 words of ferry's join codes.

Usage:  tools/make-wordlist.py [--dict FILE] [--output FILE] [--check | --print]

Source: /usr/share/dict/american-english from Debian's `wamerican` package
(2020.12.07-2 was used for the committed list).  That file is built from
SCOWL (Spell Checker Oriented Word Lists) by Kevin Atkinson, size 50.
SCOWL is distributed under the SCOWL licence, a permissive MIT-style
licence ("Permission to use, copy, modify, distribute and sell these word
lists ... is hereby granted without fee, provided that the above copyright
notice appears in all copies ..."); the notice is reproduced in the header
of the generated file.  See /usr/share/doc/wamerican/copyright.

Only one SCOWL size is installed here (wamerican = size 50; the smaller
wamerican-small is not), so "common" is approximated from the dictionary
itself: a word scores points for each of its own inflections and
derivations found in the dictionary (walk -> walks, walked, walking, walker)
and for each compound it forms with another dictionary word (fire ->
firefly, campfire).  Rare and archaic words have few of either.

Criteria, in the order they are applied:
  1. lowercase a-z only, 3 to 6 letters (this drops proper nouns, which the
     dictionary capitalises, and possessives, which carry an apostrophe);
  2. at least one vowel (a e i o u y), so no abbreviations such as "mph";
  3. not an inflected form of another dictionary word (no "cats" beside
     "cat", no "walked", "walking", "bigger", "boldly"; an -er word only
     when an -est form exists too, so "corner" and "number" stay);
  4. at least one inflection or derivation of its own in the dictionary;
  5. not in the BLOCKED_* lists (offensive, grim, awkward, affix-like,
     obscure or variant-spelling words), not starting with an offensive
     root, and not a member of a HOMOPHONES group (codes are read aloud);
  6. greedily, best score first (ties: shorter, then alphabetical), a word
     is kept only if its Damerau-Levenshtein distance to every word already
     kept is at least 2 (one typo never turns one code word into another)
     and its first four letters differ from those of every kept word
     (typing four letters is always enough);
  7. the first 2048 kept words (11 bits each; 33 bits for three words) are
     sorted and written out.

The output depends only on the dictionary file and this script: running it
twice gives the same bytes.  --check compares instead of writing and exits
1 when the committed file differs.
"""

import argparse
import codecs
import math
import re
import sys

WORDS = 2048
MIN_LEN, MAX_LEN = 3, 6
PREFIX = 4

# Suffixes that make an inflected or derived form from a base word.
INFLECTIONS = ("s", "es", "ed", "d", "ing", "er", "est", "ly", "ers", "ings")
DERIVATIONS = ("s", "es", "ed", "d", "ing", "er", "ers", "ly", "ness", "ful",
               "less", "y", "able", "ment")

# Words that a code should not show: offensive, sexual or scatological ones
# are stored ROT13-encoded below so that reading this script is not reading
# a list of slurs (decode: python3 -c "import codecs;print(codecs.decode(s,'rot13'))").
BLOCKED_ROT13 = """
    nany nahf nefr nff nffrf onfgneq ovgpu oybjwbo obare obbo obbovrf obbof
    obbol obbgl obbmr obbml oebgury ohttre ohgg ohggf pyvg pyvgf pbpnvar
    pbpx pbpxf pbba penpx penc penccl phag phagf qnza qvpx qvpxl qvyqb
    qbhpur qlxr rebgvp rebgvpn snt snttbg sneg snegf sryyngr srgvfu sevtvq
    shpx shpxre shpxf tvtbyb tbbx tbbxf urebva ubaxl ubbxre ubbgref ubeal
    uhzc wnc wvmm xvxr xvaxl xabo yhfg zbyrfg avttn avttre ahqr ahqvfg
    betnfz betl cravf cunyyhf cvzc cvzcf cvff cvffl cbbc cbbcl cbea cbeab
    cebfgvghgr chffl encr encrq encvfg erpghz fpebghz frzra frk frkvfg frkl
    funt fuvg fuvgf fyhg fyhgf fzhg fcrez fcvp fgevccre gvg gvgf gheq gjng
    intvan jnax jnaxre jrapu jrgonpx juber juberf lnxhmn
"""

# Grim, sad, violent, rude, awkward or embarrassing in a code someone reads
# out to a colleague; affix-like fragments and abbreviations the dictionary
# lists as words; obscure, archaic or hard-to-spell words that the scoring
# heuristic ranks too high.
BLOCKED_PLAIN = """
    abort abuse ache acid addict agony ail alas arson assault bleed blood
    bloody bomb bowel bra bribe burial casket coffin corpse cramp crime
    crook cruel curse cyst dead deadly deaf death debt decay demon devil die
    died disease doom drown drug drunk dumb dung dying evil fat fatal fear
    feces fight filth fool gore grave greed grief grim groin gross gun hang
    harm hate hatred hell hex hurt idiot ill insane jail jihad kill killer
    knife lame leper lice liquor loser lynch maim moron morgue murder nasty
    nazi noose obese pain plague poison pus puke rage rot rotten sad scum
    shoot sick sin sinful slave slay snot spit stab stink stupid suicide
    tomb toxic tumor ugly urine vomit war weapon weep wound zit cancer
    arab jew jewish islam christ god allah bible church pope satan negro
    gypsy gyp paddy chink coolie injun squaw redskin kraut limey wop dago
    dis est ion ting ally con led able less ping sub fore ism non pro per
    fully ding ate med hip rep ups app sup imp ably hing hes tic kin cont
    tor ins cur bur col int mar mas bled ides bling dding mono multi semi
    anti trans psycho rein pas sec gen pre ante bio eco geo hydro micro neo
    ortho para poly proto pseudo tele thermo uni
    resp smit dicta genera strata selves knives wives ova ovum ibid etc
    ere erst ergo oft nigh thee thou thy thine hath doth ye yea nay twixt
    whilst amid amidst unto wont lest
    ain aint gonna wanna gotta yeah nope yep ugh huh hmm ahem
    ole ope ops ors ens ems ess els eds ads ids tis tho thru
    bap cay cud dab daub dost dun eft emu fen fie fob gad gam gar hie hod
    hom hob ilk jib kir kip lam lea lei ley mho mew moa nib obi oaf pap
    pip pis roe rue sot sty tad tat tog tun tut vac wen wog wot yaw yen
    yob yon
"""

# Awkward in a code read out to a colleague, or slang and jargon.
BLOCKED_AWKWARD = """
    bigot cretin lecher voyeur sadist twerk fondle boink urinal uterus breast
    naked seduce kidnap napalm impale behead entomb lethal toilet barf sucker
    welsh welch japan google racial ethnic abduct biopsy lesion vulgar twit
    queer dope ogle lusty lurid amoral odious terror trauma pistol rifle
    savage voodoo pagan bidet cootie hooter phish snarf grok kludge blivet
    futz shlep schlep kibitz gob pres mes nos soli tel inc exec pol ump orc
    reorg compo conk synch gal sexual sexy hussy bimbo ghetto nerd abuser
    fetus racist looter sissy leer grisly harem imam pogrom reefer weenie
    ovary madame madam bosom bomber stench opiate thong
"""

# Obscure, archaic or formal words the scoring ranks too high, and variant
# or British spellings (appal, fulfil, grey) that people would misspell.
BLOCKED_OBSCURE = """
    abash abrade adduce ameer ampul ampere bola bosun citron civet descry
    eider helot hogan immure inhere mescal mien mizzen naiad osier platen
    piton qua quoit saree schuss sepal serape suborn surtax theist tureen
    welter labial cuspid caplet capon cachet denier fiche gamete gamine
    gerund haft hoary impute lessee liaise loonie marten micron mocker
    ocelot oriole petrel phobic pompon privet quaff raga rarefy ramify rosin
    sconce scion seer settee simian smirch sloven spume stolid succor tapir
    tepee thrall thrum triad typify unsay unman usurp vassal woolie ell
    befog beget belie betide bewail burble cadge calve cavil coif deice
    deify deject demur denude drouth drowse efface emend evince eschew
    augur ossify gibber gibe gnarl knell leaven mulish pinion pomade pommel
    purvey rankle rebut scanty sidle snivel swain swank tatter toady tousle
    waylay wanton bootee sashay
    eery fulfil instal appal distil enrol racoon trolly tabu plough grey
    ameba theatre centre colour honour labour favour humour armour
    abase ampule aphid apogee befoul benumb biped bodice bootie brogan
    claret cloche dado dickie docent dormer dowse edify epilog ermine espy
    fiord flamer garret gibbet halve impugn lessor lipid martin moppet
    phage phial pipit pippin pistil prolog sabre sachet sarape shlepp sorrel
    suckle teepee trivet tucker unbar unbolt usurer venal vesper viand
    virago visage waldo yup besom diatom dictum fetich fusty galosh hansom
    noncom sachem pompom wisher raglan seraph umbel vestry vagary sombre junco
    anon bade bilk bogie brunet caliph diadem disbar famish frack garote
    gusset hiatus instil lupin manse mottle pincer physic septet sis sol spec
    telex viol viva heehaw ester palsy lariat bettor reamer pumper gazer dory
    ocular gaiter lintel nosh nought hypo specie cruet lupine turner hauler
    narc putsch puller
"""

# Words that sound alike: every member of a group is dropped, so a code read
# aloud cannot be written down wrongly.
HOMOPHONES = """
    air heir | aisle isle | allowed aloud | altar alter | ant aunt | arc ark
    ate eight | bail bale | bait bate | bald bawled | ball bawl | band banned
    bare bear | baron barren | base bass | be bee | beach beech | beat beet
    bell belle | berry bury | berth birth | blew blue | boar bore | board bored
    bold bowled | bough bow | brake break | bread bred | bridal bridle
    buy by bye | cache cash | cell sell | cent scent sent | cereal serial
    cheap cheep | chews choose | chord cord | cite sight site | coarse course
    colonel kernel | coral choral | core corps | creak creek | crews cruise
    cue queue | days daze | dear deer | dew due | die dye | doe dough
    duel dual | earn urn | ewe you yew | faint feint | fair fare | fairy ferry
    faze phase | feat feet | find fined | fir fur | flair flare | flea flee
    flew flu flue | flour flower | for four fore | forth fourth | foul fowl
    gait gate | genes jeans | gnu knew new | grate great | groan grown
    guessed guest | hail hale | hair hare | hall haul | hay hey | heal heel
    hear here | heard herd | hew hue | hi high | him hymn | hoard horde
    hoarse horse | hole whole | holy wholly | hour our | idle idol | in inn
    jam jamb | knead need | knight night | knit nit | knot not | know no
    knows nose | lacks lax | lain lane | lead led | leak leek | lessen lesson
    lie lye | links lynx | lo low | loan lone | made maid | mail male
    main mane | maize maze | manner manor | marry merry | meat meet mete
    medal meddle | might mite | mind mined | miner minor | missed mist
    moat mote | mode mowed | moose mousse | more moor | muscle mussel
    naval navel | none nun | oar or ore | ode owed | one won | pail pale
    pain pane | pair pare pear | pause paws | pea pee | peace piece
    peak peek pique | pearl purl | pedal peddle | peer pier | plain plane
    plum plumb | pole poll | poor pour pore | pray prey | pride pried
    profit prophet | rain reign rein | raise rays raze | rap wrap | read red
    read reed | real reel | rest wrest | right rite write | ring wring
    road rode rowed | role roll | root route | rose rows | rote wrote
    rung wrung | rye wry | sail sale | scene seen | sea see | seam seem
    seas sees seize | serf surf | sew so sow | shear sheer | shoe shoo
    shone shown | side sighed | sign sine | slay sleigh | soar sore
    sole soul | some sum | son sun | stair stare | stake steak | stationary
    steal steel | stile style | suite sweet | tacks tax | tail tale
    taught taut | tea tee | team teem | tear tier | tern turn | their there
    threw through | throne thrown | tide tied | time thyme | to too two
    toad towed | toe tow | vain vane vein | vary very | wade weighed
    wail whale | waist waste | wait weight | ware wear where | wave waive
    way weigh | weak week | weather whether | wet whet | which witch
    whine wine | wood would | yoke yolk | your yore | sack sac | tic tick
    rack wrack | lute loot | mall maul | muse mews | crews cruise
    hangar hanger | leach leech | pros prose | sighs size | tern turn
    cymbal symbol | hostel hostile | seller cellar | council counsel
    desert dessert | fowl foul | gorilla guerrilla | hart heart | higher hire
    kernel colonel | lumbar lumber | pleas please | reek wreak | sign sine
    cheque check | chili chilly | cloths clothes | wax whacks | yew you
    aural oral | faun fawn | naught nought | bogey bogie
"""


# A word that starts with one of these (ROT13, as above) is blocked too.
BLOCKED_ROOTS_ROT13 = "fuvg shpx phag cvff fyhg jube cbea snt avtt qvpx pbpx gjng jnax"


def blocked(word, words):
    roots = codecs.decode(BLOCKED_ROOTS_ROT13, "rot13").split()
    return word in words or any(word.startswith(r) for r in roots)


def blocked_words():
    words = set(codecs.decode(BLOCKED_ROT13, "rot13").split())
    words |= set(BLOCKED_PLAIN.split())
    words |= set(BLOCKED_AWKWARD.split())
    words |= set(BLOCKED_OBSCURE.split())
    for group in HOMOPHONES.split("|"):
        words |= set(group.split())
    return words


def read_dictionary(path):
    with open(path, encoding="utf-8") as f:
        entries = [line.rstrip("\n") for line in f]
    return set(w for w in entries if re.fullmatch("[a-z]+", w))


def stems(word, dictionary):
    """Base words in the dictionary of which `word` is an inflected form.
    A word ending in -er counts only when its base also has an -est form
    (bigger: biggest), so that corner, number and mother stay."""
    out = []
    for suffix in INFLECTIONS:
        if word.endswith(suffix) and len(word) > len(suffix):
            base = word[: -len(suffix)]
            if suffix in ("er", "ers") and base + "est" not in dictionary \
                    and word[:-len(suffix) + 1] + "st" not in dictionary:
                continue
            out.append(base)
            if suffix in ("ed", "ing", "er", "est", "ers", "ings"):
                out.append(base + "e")  # baked, baking
            if len(base) >= 2 and base[-1] == base[-2]:
                out.append(base[:-1])  # hopped, bigger
            if base.endswith("i"):
                out.append(base[:-1] + "y")  # cried, happily
    return [s for s in out if len(s) >= MIN_LEN and s in dictionary]


def family_size(word, dictionary):
    forms = set()
    for suffix in DERIVATIONS:
        forms.add(word + suffix)
        forms.add(word + word[-1] + suffix)
        if word.endswith("e"):
            forms.add(word[:-1] + suffix)
        if word.endswith("y"):
            forms.add(word[:-1] + "i" + suffix)
    forms.discard(word)
    return sum(1 for f in forms if f in dictionary)


def compound_counts(dictionary):
    """How many dictionary words are `a + b` for each part a or b (>= 3
    letters each); compounds that are themselves inflected forms do not
    count, so "setting" does not make "ting" look common."""
    counts = {}
    for word in sorted(dictionary):
        if stems(word, dictionary):
            continue
        for i in range(MIN_LEN, len(word) - MIN_LEN + 1):
            head, tail = word[:i], word[i:]
            if head in dictionary and tail in dictionary:
                counts[head] = counts.get(head, 0) + 1
                counts[tail] = counts.get(tail, 0) + 1
    return counts


def within_one_edit(word, alphabet="abcdefghijklmnopqrstuvwxyz"):
    """Every string at Damerau-Levenshtein distance exactly 1 from word."""
    out = set()
    for i in range(len(word) + 1):
        for c in alphabet:
            out.add(word[:i] + c + word[i:])
    for i in range(len(word)):
        out.add(word[:i] + word[i + 1 :])
        for c in alphabet:
            out.add(word[:i] + c + word[i + 1 :])
        if i + 1 < len(word):
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    out.discard(word)
    return out


def bigram_model(dictionary):
    """Log-frequency of each letter pair (with ^ and $ for the word's ends)
    over the whole dictionary: words made of rare pairs (pyx, schuss,
    mizzen) are harder to spell from hearing them."""
    counts = {}
    for w in dictionary:
        padded = "^" + w + "$"
        for a, b in zip(padded, padded[1:]):
            counts[a + b] = counts.get(a + b, 0) + 1
    total = sum(counts.values())
    return {pair: math.log(n / total) for pair, n in counts.items()}


def spelling_ease(word, model):
    """The rarest letter pair of the word, as a log-frequency (higher is
    easier)."""
    padded = "^" + word + "$"
    return min(model.get(a + b, -30.0) for a, b in zip(padded, padded[1:]))


def score(word, dictionary, compounds, model):
    """Higher is better: compounds are the strongest sign of a common word,
    a family of inflections a weaker one, rare letter pairs count against."""
    return (3 * min(compounds.get(word, 0), 10) + min(family_size(word, dictionary), 6)
            + spelling_ease(word, model))


def choose(dictionary):
    block = blocked_words()
    compounds = compound_counts(dictionary)
    model = bigram_model(dictionary)
    scored = []
    for w in dictionary:
        if not MIN_LEN <= len(w) <= MAX_LEN:
            continue
        if not re.search("[aeiouy]", w) or blocked(w, block):
            continue
        if stems(w, dictionary) or family_size(w, dictionary) == 0:
            continue
        scored.append((-round(score(w, dictionary, compounds, model), 6), len(w), w))
    scored.sort()

    kept, prefixes = set(), set()
    for _, _, w in scored:
        if w[:PREFIX] in prefixes:
            continue
        if any(n in kept for n in within_one_edit(w)):
            continue
        kept.add(w)
        prefixes.add(w[:PREFIX])
        if len(kept) == WORDS:
            break
    if len(kept) < WORDS:
        sys.exit(f"only {len(kept)} words pass the criteria; {WORDS} are needed")
    return sorted(kept)


HEADER = """\
/* The 2048 words of ferry's join codes, sorted (11 bits per word).
 *
 * GENERATED by tools/make-wordlist.py from /usr/share/dict/american-english
 * (Debian package wamerican, built from SCOWL size 50). Do not edit: change
 * the script and run it again. Every word is 3-6 lowercase letters; any two
 * words differ by at least two edits (Damerau-Levenshtein) and in their
 * first four letters.
 *
 * The word lists are derived from SCOWL, under this notice:
 *
 *   Copyright 2000-2011 by Kevin Atkinson
 *
 *   Permission to use, copy, modify, distribute and sell these word
 *   lists, the associated scripts, the output created from the scripts,
 *   and its documentation for any purpose is hereby granted without fee,
 *   provided that the above copyright notice appears in all copies and
 *   that both that copyright notice and this permission notice appear in
 *   supporting documentation. Kevin Atkinson makes no representations
 *   about the suitability of this array for any purpose. It is provided
 *   "as is" without express or implied warranty.
 *
 * SCOWL also credits sources in the public domain (Moby Words II, Brian
 * Kelk's UK English Wordlist) and others under similar permissive terms;
 * see /usr/share/doc/wamerican/copyright. */
#include "core/wordlist.h"

const size_t ferry_wordlist_count = FERRY_WORDLIST_COUNT;

/* clang-format off */
const char *const ferry_wordlist[FERRY_WORDLIST_COUNT] = {
"""


def render(words):
    lines = [HEADER]
    per_line = 10
    for i in range(0, len(words), per_line):
        row = " ".join('"%s",' % w for w in words[i : i + per_line])
        lines.append("  " + row + "\n")
    lines.append("};\n/* clang-format on */\n")
    return "".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dict", default="/usr/share/dict/american-english")
    parser.add_argument("--output", default="src/core/wordlist.c")
    parser.add_argument("--check", action="store_true",
                        help="compare with --output instead of writing it")
    parser.add_argument("--print", action="store_true",
                        help="print the words, one a line, and write nothing")
    args = parser.parse_args()

    words = choose(read_dictionary(args.dict))
    if args.print:
        print("\n".join(words))
        return 0
    text = render(words)
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        print(f"{args.output}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {len(words)} words to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
