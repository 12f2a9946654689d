"""The SynthCaps source catalogue: the 15 sound sources, how captions name and describe each, and its kind."""

from __future__ import annotations

from dataclasses import dataclass

# kind: "discrete" (countable events), "repetitive" (events at a rate: tempo), "continuous" (a texture)
# subjects: (template with an optional "{adj}" slot, number, verbs as (base, 3rd person, -ing)) -- first = most common


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str
    pitched: bool
    synonyms: tuple[str, ...]
    subjects: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...]
    loud_adj: tuple[str, ...] = ("loud ",)
    quiet_adj: tuple[str, ...] = ("quiet ", "soft ", "faint ")
    high_adj: tuple[str, ...] = ("high pitched ", "shrill ")
    low_adj: tuple[str, ...] = ("low pitched ", "deep ")
    high_adv: tuple[str, ...] = (" at a high pitch", " in a high tone")
    low_adv: tuple[str, ...] = (" at a low pitch", " in a low tone")
    description: str = ""
    # False for a recorded source whose events cannot be counted: its captions say nothing of "once" or "twice"
    countable: bool = True


def _v(base: str, third: str, ing: str) -> tuple[str, str, str]:
    return (base, third, ing)


CATALOGUE: tuple[SourceSpec, ...] = (
    SourceSpec(
        "beep",
        "discrete",
        True,
        ("beep", "beeps", "beeping", "beeper", "machine", "device"),
        (
            ("a {adj}machine", "sg", (_v("beep", "beeps", "beeping"),)),
            (
                "an {adj}electronic beep",
                "sg",
                (_v("sound", "sounds", "sounding"), _v("go off", "goes off", "going off")),
            ),
            ("a {adj}device", "sg", (_v("beep", "beeps", "beeping"),)),
        ),
        description="pure sine tone bursts",
    ),
    SourceSpec(
        "siren",
        "continuous",
        True,
        ("siren", "sirens", "ambulance", "police"),
        (
            ("a {adj}siren", "sg", (_v("wail", "wails", "wailing"), _v("blare", "blares", "blaring"))),
            ("a {adj}police siren", "sg", (_v("wail", "wails", "wailing"), _v("sound", "sounds", "sounding"))),
            ("an {adj}ambulance siren", "sg", (_v("wail", "wails", "wailing"),)),
        ),
        description="harmonic tone with a slow periodic frequency sweep",
    ),
    SourceSpec(
        "engine",
        "continuous",
        True,
        ("engine", "engines", "motor", "truck", "generator"),
        (
            (
                "an {adj}engine",
                "sg",
                (_v("hum", "hums", "humming"), _v("run", "runs", "running"), _v("idle", "idles", "idling")),
            ),
            ("a {adj}motor", "sg", (_v("hum", "hums", "humming"), _v("drone", "drones", "droning"))),
            ("a {adj}truck engine", "sg", (_v("rumble", "rumbles", "rumbling"), _v("idle", "idles", "idling"))),
            ("a {adj}generator", "sg", (_v("hum", "hums", "humming"),)),
        ),
        high_adj=("high pitched ", "whining "),
        low_adj=("low pitched ", "deep "),
        description="low harmonic hum with firing-rate modulation and rumble",
    ),
    SourceSpec(
        "rain",
        "continuous",
        False,
        ("rain", "raindrops", "rainfall", "raining", "downpour"),
        (
            ("{adj}rain", "mass", (_v("fall", "falls", "falling"), _v("pour", "pours", "pouring"))),
            ("{adj}raindrops", "pl", (_v("fall", "falls", "falling"), _v("patter", "patters", "pattering"))),
            ("the {adj}rain", "mass", (_v("fall", "falls", "falling"), _v("patter", "patters", "pattering"))),
        ),
        loud_adj=("heavy ",),
        quiet_adj=("light ", "gentle "),
        description="high-passed noise with dense droplet clicks",
    ),
    SourceSpec(
        "wind",
        "continuous",
        False,
        ("wind", "winds", "breeze", "gusts"),
        (
            ("the {adj}wind", "mass", (_v("blow", "blows", "blowing"), _v("howl", "howls", "howling"))),
            ("{adj}wind", "mass", (_v("blow", "blows", "blowing"), _v("rush", "rushes", "rushing"))),
            ("a {adj}breeze", "sg", (_v("blow", "blows", "blowing"),)),
            ("{adj}gusts of wind", "pl", (_v("blow", "blows", "blowing"),)),
        ),
        loud_adj=("strong ",),
        quiet_adj=("gentle ", "light "),
        description="low band-passed noise with slow gusting amplitude",
    ),
    SourceSpec(
        "clock",
        "repetitive",
        False,
        ("clock", "clocks"),
        (
            ("a {adj}clock", "sg", (_v("tick", "ticks", "ticking"),)),
            ("an old {adj}clock", "sg", (_v("tick", "ticks", "ticking"),)),
            (
                "a {adj}wall clock",
                "sg",
                (_v("tick", "ticks", "ticking"), _v("tick away", "ticks away", "ticking away")),
            ),
        ),
        description="short resonant tick/tock clicks at a regular rate",
    ),
    SourceSpec(
        "bell",
        "discrete",
        True,
        ("bell", "bells", "church"),
        (
            ("a {adj}bell", "sg", (_v("ring", "rings", "ringing"), _v("chime", "chimes", "chiming"))),
            ("a {adj}church bell", "sg", (_v("ring", "rings", "ringing"), _v("toll", "tolls", "tolling"))),
        ),
        description="inharmonic partials with a long exponential decay",
    ),
    SourceSpec(
        "birds",
        "repetitive",
        True,
        ("bird", "birds", "songbird", "songbirds"),
        (
            ("{adj}birds", "pl", (_v("chirp", "chirps", "chirping"), _v("tweet", "tweets", "tweeting"))),
            ("a {adj}bird", "sg", (_v("chirp", "chirps", "chirping"), _v("sing", "sings", "singing"))),
            ("some {adj}birds", "pl", (_v("chirp", "chirps", "chirping"), _v("sing", "sings", "singing"))),
            ("a {adj}songbird", "sg", (_v("chirp", "chirps", "chirping"),)),
        ),
        description="fast high frequency sweeps (chirps) at a rate",
    ),
    SourceSpec(
        "knocking",
        "discrete",
        False,
        ("knock", "knocks", "knocking", "knocked", "door"),
        (
            ("someone", "sg", (_v("knock on a door", "knocks on a door", "knocking on a door"),)),
            ("a person", "sg", (_v("knock on the door", "knocks on the door", "knocking on the door"),)),
            (
                "somebody",
                "sg",
                (_v("knock on a wooden door", "knocks on a wooden door", "knocking on a wooden door"),),
            ),
        ),
        description="damped low resonance with a short click",
    ),
    SourceSpec(
        "whistle",
        "discrete",
        True,
        ("whistle", "whistles", "whistling", "whistled"),
        (
            ("someone", "sg", (_v("whistle", "whistles", "whistling"),)),
            ("a {adj}whistle", "sg", (_v("blow", "blows", "blowing"), _v("sound", "sounds", "sounding"))),
            ("a person", "sg", (_v("whistle", "whistles", "whistling"),)),
        ),
        description="sustained pure tone with vibrato and breath noise",
    ),
    SourceSpec(
        "water",
        "continuous",
        False,
        ("water", "stream", "faucet", "brook", "creek"),
        (
            ("{adj}water", "mass", (_v("run", "runs", "running"), _v("flow", "flows", "flowing"))),
            ("a {adj}stream", "sg", (_v("flow", "flows", "flowing"), _v("babble", "babbles", "babbling"))),
            ("a {adj}faucet", "sg", (_v("run", "runs", "running"),)),
            ("a {adj}brook", "sg", (_v("babble", "babbles", "babbling"), _v("trickle", "trickles", "trickling"))),
        ),
        description="mid band noise with dense rising bubble chirps",
    ),
    SourceSpec(
        "footsteps",
        "repetitive",
        False,
        ("footsteps", "footstep", "steps", "walks", "walking", "walk"),
        (
            ("someone", "sg", (_v("walk", "walks", "walking"), _v("walk by", "walks by", "walking by"))),
            ("{adj}footsteps", "pl", (_v("sound", "sound", "sounding"), _v("echo", "echo", "echoing"))),
            ("a person", "sg", (_v("walk", "walks", "walking"),)),
            ("{adj}steps", "pl", (_v("sound", "sound", "sounding"),)),
        ),
        description="low thuds with a short scuff at a walking rate",
    ),
    SourceSpec(
        "alarm",
        "repetitive",
        True,
        ("alarm", "alarms", "buzzer", "buzzing"),
        (
            ("an {adj}alarm", "sg", (_v("buzz", "buzzes", "buzzing"), _v("go off", "goes off", "going off"))),
            ("a {adj}buzzer", "sg", (_v("sound", "sounds", "sounding"), _v("buzz", "buzzes", "buzzing"))),
            ("an {adj}alarm", "sg", (_v("sound", "sounds", "sounding"),)),
        ),
        description="square-wave pulses at a rate",
    ),
    SourceSpec(
        "dog",
        "discrete",
        True,
        ("dog", "dogs", "puppy", "hound"),
        (
            ("a {adj}dog", "sg", (_v("bark", "barks", "barking"),)),
            ("a {adj}puppy", "sg", (_v("yap", "yaps", "yapping"), _v("bark", "barks", "barking"))),
            ("a {adj}hound", "sg", (_v("bark", "barks", "barking"),)),
        ),
        loud_adj=(),
        quiet_adj=(),
        high_adj=("small ", "little "),
        low_adj=("big ", "large "),
        high_adv=(" in a high voice", " with a high pitch"),
        low_adv=(" in a deep voice", " with a low pitch"),
        description="harmonic bursts with a falling fundamental and noise",
    ),
    SourceSpec(
        "horn",
        "discrete",
        True,
        ("horn", "horns", "car", "cars", "honk", "honks", "honking"),
        (
            ("a {adj}car horn", "sg", (_v("honk", "honks", "honking"), _v("blare", "blares", "blaring"))),
            ("a {adj}car", "sg", (_v("honk", "honks", "honking"),)),
            ("a {adj}horn", "sg", (_v("honk", "honks", "honking"), _v("sound", "sounds", "sounding"))),
        ),
        description="two-tone sawtooth chord",
    ),
)
SOURCES: dict[str, SourceSpec] = {s.name: s for s in CATALOGUE}
SOURCE_NAMES: tuple[str, ...] = tuple(s.name for s in CATALOGUE)
