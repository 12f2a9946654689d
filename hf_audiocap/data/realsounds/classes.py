"""The class table of the real-sounds corpus, written and reviewed by hand.

Each class is a :class:`SourceSpec` (the caption words, as SynthCaps' catalogue has them for its synthetic sources)
and the recordings that hold it. A recording is named ``package:path`` (a file in the package), or
``package:path#entry`` for a sound inside a container (an index into OpenTTD's ``opensfx.cat``, a file path inside a Qt
``.rcc`` archive). Every recording listed here was chosen from its package's own name or description of it, and no two
of one class are cuts of one source recording (OpenSFX credits each sound's original: those that share an original,
such as "Wind" and "Heavy wind", appear at most once). A class is kept only with at least
:data:`MIN_RECORDINGS` distinct recordings, so each split has one it never shares.

Recorded sources are not countable (a dog recording barks as often as it barks) nor pitched at will, so their captions
carry loudness only; ``continuous`` sources (textures) can stretch over a clip and sit in its background.
"""

from __future__ import annotations

from hf_audiocap.data.synthcaps.catalogue import SourceSpec

MIN_RECORDINGS = 4

_TUX = "tuxpaint-stamps-default:usr/share/tuxpaint/stamps/"
_CAT = "openttd-opensfx:usr/share/games/openttd/baseset/opensfx/opensfx.cat#"
_CITY = "lincity-ng-data:usr/share/games/lincity-ng/sounds/"
_PI = "sonic-pi-samples:usr/share/sonic-pi/samples/"
_LMMS = "lmms-common:usr/share/lmms/samples/"
_RCC = "gcompris-qt-data:usr/share/gcompris-qt/rcc/"
_FARM = _RCC + "explore_farm_animals.rcc#"
_MEMORY = _RCC + "memory-sound.rcc#"
_INSTRUMENTS = _RCC + "instruments.rcc#"
_SPEECH = "asterisk-core-sounds-en-wav:usr/share/asterisk/sounds/en_US_f_Allison/"


def _v(base: str, third: str, ing: str) -> tuple[str, str, str]:
    return (base, third, ing)


def _cls(name, kind, synonyms, subjects, **kw) -> SourceSpec:
    return SourceSpec(name, kind, False, tuple(synonyms), tuple(subjects), countable=False, **kw)


_PLAY = (_v("play", "plays", "playing"),)

CLASSES: tuple[SourceSpec, ...] = (
    _cls("dog", "discrete", ("dog", "dogs", "puppy", "barks", "barking"), (
        ("a {adj}dog", "sg", (_v("bark", "barks", "barking"),)),
        ("a {adj}puppy", "sg", (_v("bark", "barks", "barking"), _v("yap", "yaps", "yapping"))),
        ("{adj}dogs", "pl", (_v("bark", "bark", "barking"),)),
    )),
    _cls("cow", "discrete", ("cow", "cows", "cattle", "bull", "moo", "moos", "mooing"), (
        ("a {adj}cow", "sg", (_v("moo", "moos", "mooing"), _v("low", "lows", "lowing"))),
        ("{adj}cattle", "pl", (_v("moo", "moo", "mooing"),)),
        ("a {adj}bull", "sg", (_v("bellow", "bellows", "bellowing"),)),
    )),
    _cls("sheep", "discrete", ("sheep", "lamb", "lambs", "goat", "goats", "bleat", "bleats", "bleating"), (
        ("a {adj}sheep", "sg", (_v("bleat", "bleats", "bleating"),)),
        ("a {adj}lamb", "sg", (_v("bleat", "bleats", "bleating"),)),
        ("a {adj}goat", "sg", (_v("bleat", "bleats", "bleating"),)),
    )),
    _cls("pig", "discrete", ("pig", "pigs", "piglet", "hog", "oink", "oinks", "oinking", "grunts"), (
        ("a {adj}pig", "sg", (_v("oink", "oinks", "oinking"), _v("grunt", "grunts", "grunting"))),
        ("{adj}pigs", "pl", (_v("grunt", "grunt", "grunting"), _v("squeal", "squeal", "squealing"))),
        ("a {adj}hog", "sg", (_v("grunt", "grunts", "grunting"),)),
    )),
    _cls("duck", "discrete", ("duck", "ducks", "goose", "geese", "quack", "quacks", "quacking"), (
        ("a {adj}duck", "sg", (_v("quack", "quacks", "quacking"),)),
        ("{adj}ducks", "pl", (_v("quack", "quack", "quacking"),)),
        ("a {adj}goose", "sg", (_v("cackle", "cackles", "cackling"),)),
    )),
    _cls("birds", "continuous", ("bird", "birds", "songbird", "birdsong", "chirp", "chirps", "chirping", "tweeting"), (
        ("{adj}birds", "pl", (_v("chirp", "chirp", "chirping"), _v("sing", "sing", "singing"))),
        ("a {adj}bird", "sg", (_v("sing", "sings", "singing"), _v("chirp", "chirps", "chirping"))),
        ("a {adj}songbird", "sg", (_v("sing", "sings", "singing"),)),
    )),
    _cls("roar", "discrete", ("lion", "lions", "tiger", "bear", "roar", "roars", "roaring", "growl", "growls", "growling"), (
        ("a {adj}lion", "sg", (_v("roar", "roars", "roaring"),)),
        ("a {adj}tiger", "sg", (_v("growl", "growls", "growling"), _v("roar", "roars", "roaring"))),
        ("a {adj}wild animal", "sg", (_v("roar", "roars", "roaring"), _v("growl", "growls", "growling"))),
    )),
    _cls("insect", "continuous", ("insect", "insects", "bee", "bees", "mosquito", "hornet", "buzz", "buzzes", "buzzing"), (
        ("a {adj}bee", "sg", (_v("buzz", "buzzes", "buzzing"),)),
        ("{adj}insects", "pl", (_v("buzz", "buzz", "buzzing"),)),
        ("a {adj}mosquito", "sg", (_v("buzz", "buzzes", "buzzing"), _v("whine", "whines", "whining"))),
    )),
    _cls("water", "continuous", ("water", "stream", "brook", "creek", "river", "lake"), (
        ("{adj}water", "mass", (_v("flow", "flows", "flowing"), _v("splash", "splashes", "splashing"))),
        ("a {adj}stream", "sg", (_v("flow", "flows", "flowing"), _v("babble", "babbles", "babbling"))),
        ("the {adj}water of a lake", "mass", (_v("lap", "laps", "lapping"),)),
    )),
    _cls("fire", "continuous", ("fire", "fires", "flames", "crackle", "crackles", "crackling", "burning"), (
        ("a {adj}fire", "sg", (_v("crackle", "crackles", "crackling"), _v("burn", "burns", "burning"))),
        ("{adj}flames", "pl", (_v("crackle", "crackle", "crackling"), _v("flicker", "flicker", "flickering"))),
    ), loud_adj=("big ",), quiet_adj=("small ", "little ")),
    _cls("traffic", "continuous", ("traffic", "cars", "road", "street"), (
        ("{adj}traffic", "mass", (_v("pass", "passes", "passing"), _v("go by", "goes by", "going by"))),
        ("{adj}cars", "pl", (_v("drive by", "drive by", "driving by"), _v("pass", "pass", "passing"))),
        ("{adj}traffic on a busy road", "mass", (_v("rumble", "rumbles", "rumbling"),)),
    ), loud_adj=("heavy ",), quiet_adj=("light ", "distant ")),
    _cls("engine", "discrete", ("engine", "engines", "motor", "bus", "truck"), (
        ("an {adj}engine", "sg", (_v("start", "starts", "starting"), _v("start up", "starts up", "starting up"))),
        ("a {adj}bus", "sg", (_v("start and pull away", "starts and pulls away", "starting and pulling away"),)),
        ("a {adj}truck", "sg", (_v("start its engine", "starts its engine", "starting its engine"),)),
    )),
    _cls("train", "continuous", ("train", "trains", "locomotive", "railway", "rails"), (
        ("a {adj}train", "sg", (_v("pass", "passes", "passing"), _v("rumble", "rumbles", "rumbling"))),
        ("a {adj}locomotive", "sg", (_v("pull out", "pulls out", "pulling out"), _v("run", "runs", "running"))),
        ("a {adj}train", "sg", (_v("run on the rails", "runs on the rails", "running on the rails"),)),
    )),
    _cls("aeroplane", "continuous", ("plane", "planes", "aeroplane", "airplane", "jet", "jets", "aircraft"), (
        ("a {adj}plane", "sg", (_v("take off", "takes off", "taking off"), _v("fly over", "flies over", "flying over"))),
        ("a {adj}jet", "sg", (_v("fly overhead", "flies overhead", "flying overhead"), _v("take off", "takes off", "taking off"))),
        ("an {adj}aircraft", "sg", (_v("fly by", "flies by", "flying by"),)),
    )),
    _cls("hammering", "discrete", ("hammer", "hammers", "hammering", "hammered", "anvil", "blacksmith"), (
        ("someone", "sg", (_v("hammer on metal", "hammers on metal", "hammering on metal"),)),
        ("a {adj}hammer", "sg", (_v("strike", "strikes", "striking"), _v("bang", "bangs", "banging"))),
        ("a blacksmith", "sg", (_v("hammer on an anvil", "hammers on an anvil", "hammering on an anvil"),)),
    )),
    _cls("machinery", "continuous", ("machine", "machines", "machinery", "factory", "industrial"), (
        ("a {adj}machine", "sg", (_v("run", "runs", "running"), _v("whir", "whirs", "whirring"))),
        ("{adj}machinery", "mass", (_v("operate", "operates", "operating"), _v("clank", "clanks", "clanking"))),
        ("a {adj}factory", "sg", (_v("hum", "hums", "humming"),)),
    )),
    _cls("crash", "discrete", ("crash", "crashes", "crashing", "clatter", "clatters", "clattering", "smash"), (
        ("something", "sg", (_v("crash to the ground", "crashes to the ground", "crashing to the ground"),)),
        ("{adj}objects", "pl", (_v("fall and clatter", "fall and clatter", "falling and clattering"),)),
        ("a {adj}crash", "sg", (_v("sound", "sounds", "sounding"),)),
    )),
    _cls("explosion", "discrete", ("explosion", "explosions", "explode", "explodes", "exploding", "blast"), (
        ("an {adj}explosion", "sg", (_v("go off", "goes off", "going off"), _v("boom", "booms", "booming"))),
        ("something", "sg", (_v("explode", "explodes", "exploding"),)),
        ("a {adj}blast", "sg", (_v("go off", "goes off", "going off"),)),
    )),
    _cls("crowd", "continuous", ("crowd", "crowds", "audience", "cheer", "cheers", "cheering", "applause", "applauds", "applauding", "clapping"), (
        ("a {adj}crowd", "sg", (_v("cheer", "cheers", "cheering"), _v("applaud", "applauds", "applauding"))),
        ("an {adj}audience", "sg", (_v("applaud", "applauds", "applauding"), _v("clap", "claps", "clapping"))),
        ("a {adj}crowd of people", "sg", (_v("cheer", "cheers", "cheering"),)),
    )),
    _cls("speech", "discrete", ("woman", "speaks", "speaking", "talks", "talking", "voice", "speech"), (
        ("a woman", "sg", (_v("speak", "speaks", "speaking"), _v("talk", "talks", "talking"))),
        ("a {adj}female voice", "sg", (_v("speak", "speaks", "speaking"), _v("give instructions", "gives instructions", "giving instructions"))),
        ("a woman", "sg", (_v("say something", "says something", "saying something"),)),
    ), loud_adj=("loud ",), quiet_adj=("quiet ", "soft ")),
    _cls("drums", "continuous", ("drum", "drums", "drummer", "drumming", "percussion"), (
        ("someone", "sg", (_v("play the drums", "plays the drums", "playing the drums"),)),
        ("{adj}drums", "pl", (_v("play", "play", "playing"), _v("beat", "beat", "beating"))),
        ("a {adj}drummer", "sg", (_v("play a beat", "plays a beat", "playing a beat"),)),
    )),
    _cls("piano", "discrete", ("piano", "pianos", "pianist"), (
        ("a {adj}piano", "sg", (_v("play", "plays", "playing"),)),
        ("someone", "sg", (_v("play the piano", "plays the piano", "playing the piano"),)),
        ("a {adj}pianist", "sg", (_v("play a few notes", "plays a few notes", "playing a few notes"),)),
    )),
    _cls("guitar", "discrete", ("guitar", "guitars", "guitarist", "strums", "strumming"), (
        ("a {adj}guitar", "sg", (_v("play", "plays", "playing"), _v("strum", "strums", "strumming"))),
        ("someone", "sg", (_v("play the guitar", "plays the guitar", "playing the guitar"),)),
        ("a {adj}guitarist", "sg", (_v("play a few notes", "plays a few notes", "playing a few notes"),)),
    )),
    _cls("violin", "discrete", ("violin", "violins", "cello", "fiddle", "violinist"), (
        ("a {adj}violin", "sg", _PLAY),
        ("someone", "sg", (_v("play the violin", "plays the violin", "playing the violin"),)),
        ("a {adj}cello", "sg", _PLAY),
    )),
    _cls("brass", "discrete", ("trumpet", "trumpets", "trombone", "tuba", "brass"), (
        ("a {adj}trumpet", "sg", (_v("play", "plays", "playing"), _v("blare", "blares", "blaring"))),
        ("a {adj}trombone", "sg", _PLAY),
        ("a {adj}brass instrument", "sg", _PLAY),
    )),
    _cls("woodwind", "discrete", ("flute", "flutes", "clarinet", "saxophone", "woodwind", "bassoon"), (
        ("a {adj}flute", "sg", _PLAY),
        ("a {adj}clarinet", "sg", _PLAY),
        ("a {adj}woodwind instrument", "sg", _PLAY),
    )),
    _cls("organ", "discrete", ("organ", "organs", "organist"), (
        ("an {adj}organ", "sg", (_v("play", "plays", "playing"), _v("sound", "sounds", "sounding"))),
        ("a {adj}church organ", "sg", _PLAY),
        ("someone", "sg", (_v("play the organ", "plays the organ", "playing the organ"),)),
    )),
    _cls("bell", "discrete", ("bell", "bells", "gong", "chime", "chimes", "chiming"), (
        ("a {adj}bell", "sg", (_v("ring", "rings", "ringing"), _v("chime", "chimes", "chiming"))),
        ("{adj}bells", "pl", (_v("ring", "ring", "ringing"),)),
        ("a {adj}gong", "sg", (_v("ring out", "rings out", "ringing out"),)),
    )),
)  # fmt: skip

# class -> its recordings (see the module docstring for the naming)
RECORDINGS: dict[str, tuple[str, ...]] = {
    "dog": (_TUX + "animals/mammals/dogs/dog.ogg", _FARM + "dog.ogg", _MEMORY + "LRBark_1_LA_cut.ogg",
            _MEMORY + "LRBark_3_LA_cut.ogg"),
    "cow": (_TUX + "animals/mammals/bovines/cow.ogg", _TUX + "animals/mammals/bovines/cow_white.ogg",
            _TUX + "animals/mammals/bovines/bull.ogg", _CAT + "37", _FARM + "cow.ogg"),
    "sheep": (_TUX + "animals/mammals/bovines/sheep.ogg", _TUX + "animals/mammals/bovines/sheep_lamb.ogg",
              _TUX + "animals/mammals/bovines/ram.ogg", _TUX + "animals/mammals/bovines/goat.ogg",
              _TUX + "animals/mammals/bovines/mountaingoat.ogg", _CAT + "36", _FARM + "sheep.ogg"),
    "pig": (_TUX + "animals/mammals/pig.ogg", _TUX + "animals/mammals/pig_golden.ogg",
            _TUX + "animals/mammals/pig_golden2.ogg", _FARM + "pig.ogg"),
    "duck": (_TUX + "animals/birds/duck.ogg", _TUX + "animals/birds/drake.ogg", _TUX + "animals/birds/gander.ogg",
             _FARM + "duck.ogg"),
    "birds": (_TUX + "animals/birds/blackbird.ogg", _TUX + "animals/birds/lark.ogg", _TUX + "animals/birds/cuckoo.ogg",
              _TUX + "animals/birds/quetzal.ogg", _CAT + "66", _CAT + "72"),
    "roar": (_TUX + "animals/mammals/cats/lion.ogg", _TUX + "animals/mammals/cats/tiger.ogg",
             _TUX + "animals/mammals/bears/bear.ogg", _CAT + "67"),
    "insect": (_TUX + "animals/insects/bee.ogg", _TUX + "animals/insects/mosquito.ogg",
               _TUX + "animals/insects/hornet.ogg", _TUX + "animals/insects/xanthia.ogg"),
    "water": tuple(_CITY + f"Water{i}.wav" for i in range(1, 6)) + (_CITY + "ParklandLake1.wav", _CITY + "ParklandLake2.wav"),
    "fire": (_CITY + "Fire1.wav", _CITY + "Fire2.wav", _CITY + "Fire3.wav", _CITY + "FireWasteland1.wav"),
    "traffic": tuple(_CITY + f"Trafic{level}{i}.wav" for level in ("Low", "High") for i in range(1, 4)),
    "engine": (_CAT + "25", _CAT + "27", _CAT + "28", _MEMORY + "LRStartAndStopCarEngine1LACut.ogg"),
    "train": (_CAT + "4", _CAT + "10", _CAT + "65", _CAT + "71", _CITY + "RailTrain1.wav", _CITY + "RailTrain2.wav",
              _CITY + "RailTrain3.wav", _MEMORY + "LRTrain_slowing_down_01_LA_cut.ogg"),
    "aeroplane": (_CAT + "8", _CAT + "9", _CAT + "59", _CAT + "61", _CAT + "69"),
    "hammering": (_CITY + "Blacksmith1.wav", _CITY + "Blacksmith2.wav", _CITY + "Blacksmith3.wav",
                  _TUX + "household/tools/hammer.ogg", _TUX + "household/tools/mallet_metal.ogg", _CAT + "39"),
    "machinery": tuple(_CITY + f"Industry{kind}{i}.wav" for kind in ("High", "Light") for i in range(1, 4))
    + tuple(_MEMORY + f"LRFactory_noise_0{i}_LA.ogg" for i in range(1, 7)) + (_CAT + "11",),
    "crash": (_CAT + "17", _CAT + "16", _MEMORY + "LRObject_falling_01_LA.ogg", _MEMORY + "LRObject_falling_02_LA.ogg",
              _RCC + "core.rcc#crash.wav"),
    "explosion": (_CAT + "18", _LMMS + "effects/explode01.ogg", _CITY + "RocketExplosion1.wav",
                  _TUX + "seasonal/newyears/fireworks.ogg"),
    "crowd": (_CAT + "29", _LMMS + "misc/applause01.ogg", _MEMORY + "LRApplauses_1_LA_cut.ogg",
              _CITY + "SportsCroud1.wav", _CITY + "SportsCroud2.wav", _CITY + "SportsCroud3.wav",
              _LMMS + "misc/raving_crowd01.ogg"),
    "speech": tuple(_SPEECH + name for name in (
        "agent-loginok.wav", "all-circuits-busy-now.wav", "call-forwarding.wav", "cannot-complete-as-dialed.wav",
        "check-number-dial-again.wav", "conf-getpin.wav", "conf-onlyperson.wav", "privacy-prompt.wav",
        "vm-intro.wav", "vm-options.wav", "queue-thankyou.wav", "dir-intro.wav",
    )),
    "drums": (_PI + "loop_amen.flac", _PI + "loop_breakbeat.flac", _PI + "drum_roll.flac",
              _TUX + "hobbies/music/percussion/drumkit.ogg", _TUX + "hobbies/music/percussion/drum_tomtom_floor.ogg",
              _INSTRUMENTS + "drum_kit.ogg", _INSTRUMENTS + "snare_drum.ogg", _INSTRUMENTS + "bongo.ogg",
              _INSTRUMENTS + "timpani.ogg", _LMMS + "beats/break01.ogg", _LMMS + "beats/break02.ogg",
              _LMMS + "beats/break03.ogg"),
    "piano": (_LMMS + "instruments/piano01.ogg", _LMMS + "instruments/piano02.ogg", _INSTRUMENTS + "piano.ogg",
              _PI + "ambi_piano.flac", _LMMS + "instruments/e_piano_accord01.ogg"),
    "guitar": (_LMMS + "instruments/steel_guitar01.ogg", _LMMS + "latin/latin_guitar01.ogg",
               _LMMS + "latin/latin_guitar02.ogg", _LMMS + "latin/latin_guitar03.ogg", _INSTRUMENTS + "guitar.ogg",
               _INSTRUMENTS + "electric_guitar.ogg", _PI + "guit_em9.flac", _PI + "guit_e_slide.flac",
               _PI + "guit_harmonics.flac", _PI + "guit_e_fifths.flac", _MEMORY + "guitar_melody.ogg"),
    "violin": (_TUX + "hobbies/music/string/violin.ogg", _TUX + "hobbies/music/string/cello.ogg",
               _LMMS + "instruments/violin_fingered01.ogg", _LMMS + "instruments/violin_double_stop01.ogg",
               _LMMS + "instruments/violin_pizzicato01.ogg", _LMMS + "instruments/cello01.ogg",
               _INSTRUMENTS + "violin.ogg", _INSTRUMENTS + "cello.ogg"),
    "brass": (_LMMS + "instruments/trumpet01.ogg", _LMMS + "latin/latin_brass01.ogg", _INSTRUMENTS + "trumpet.ogg",
              _INSTRUMENTS + "trombone.ogg", _INSTRUMENTS + "tuba.ogg"),
    "woodwind": (_LMMS + "instruments/flute01.ogg", _INSTRUMENTS + "flute_traversiere.ogg",
                 _INSTRUMENTS + "clarinet.ogg", _INSTRUMENTS + "saxophone.ogg",
                 _TUX + "hobbies/music/wind/bassoon.ogg"),
    "organ": (_LMMS + "instruments/church_organ01.ogg", _LMMS + "instruments/church_organ02.ogg",
              _LMMS + "instruments/church_organ03.ogg", _LMMS + "instruments/church_organ04.ogg",
              _LMMS + "instruments/e_organ01.ogg", _INSTRUMENTS + "organ.ogg"),
    "bell": (_PI + "perc_bell.flac", _PI + "perc_bell2.flac", _MEMORY + "LRBuddhist_gong_05_LA.ogg", _CAT + "14",
             _LMMS + "effects/wind_chimes01.ogg"),
}  # fmt: skip

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)

_WL = "widelands-data:usr/share/games/widelands/data/sound/"
_WES = "wesnoth-1.16-data:usr/share/games/wesnoth/1.16/data/core/sounds/"
_SIMU = "simutrans-pak64:usr/share/games/simutrans/pak/sound/"
_CIV = "freeciv-data:usr/share/games/freeciv/stdsounds/"
_ICONS = "sound-icons:usr/share/sounds/sound-icons/"
_THEME = "sound-theme-freedesktop:usr/share/sounds/freedesktop/stereo/"

# The `independent` split: recordings of the classes above from packages that the corpus never draws from (each chosen,
# as above, by its package's own name for it; one of each numbered family of variants), heard alone. Not a class
# table: a class needs no minimum here, and one that the corpus leaves out is left out here too.
INDEPENDENT_RECORDINGS: dict[str, tuple[str, ...]] = {
    "cow": (_WL + "farm/ox_00.ogg", _WL + "farm/ox_01.ogg"),
    "sheep": (_WL + "farm/sheep_00.ogg",),
    "pig": (_WL + "animals/boar.ogg",),
    "birds": (_WL + "animals/bird1_00.ogg", _WL + "animals/bird3_00.ogg", _WES + "ambient/birds1.ogg",
              _SIMU + "seagulls.wav", _ICONS + "canary-long.wav"),
    "insect": (_WL + "animals/crickets1_00.ogg",),
    "roar": (_WES + "wolf-growl-1.ogg",),
    "water": (_SIMU + "Water.wav",),
    "fire": (_WES + "ambient/campfire.ogg", _WES + "fire.wav"),
    "engine": (_SIMU + "truck.wav", _SIMU + "bus.wav"),
    "train": (_SIMU + "steam.wav", _SIMU + "diesel.wav"),
    "aeroplane": (_SIMU + "planelow.wav", _SIMU + "comet-jet.wav"),
    "hammering": (_WL + "hammering/hammering_00.ogg", _WL + "smiths/smith_00.ogg"),
    "machinery": (_WL + "sawmill/sawmill_00.ogg", _SIMU + "buzzsaw.wav"),
    "crash": (_WL + "woodcutting/tree_falling_00.ogg", _CIV + "woodbrk.ogg", _CIV + "metbrk.ogg"),
    "explosion": (_CIV + "LrgExpl.ogg", _SIMU + "explosion.wav", _WES + "explosion.ogg",
                  "tuxtype-data:usr/share/tuxtype/sounds/explosion.wav"),
    "crowd": ("heroes-sound-effects:usr/share/games/heroes/sfx/foule2.wav", "tuxtype-data:usr/share/tuxtype/sounds/cheer.wav",
              "frozen-bubble-data:usr/share/games/frozen-bubble/snd/applause.ogg"),
    "speech": (_THEME + "audio-channel-front-left.oga",
               "asterisk-core-sounds-fr-wav:usr/share/asterisk/sounds/fr_CA_f_June/conf-waitforleader.wav",
               "asterisk-core-sounds-fr-wav:usr/share/asterisk/sounds/fr_CA_f_June/agent-newlocation.wav"),
    "drums": (_WES + "ambient/wardrums.ogg",),
    "piano": (_ICONS + "piano-3.wav", _ICONS + "electric-piano-3.wav"),
    "guitar": (_ICONS + "guitar-12.wav", _ICONS + "guitar-13.wav"),
    "violin": (_ICONS + "violoncello-7.wav",),
    "brass": (_ICONS + "trumpet-1.wav", _ICONS + "trumpet-12.wav"),
    "bell": (_THEME + "alarm-clock-elapsed.oga", "tuxpaint-data:usr/share/tuxpaint/sounds/typewriterbell.wav"),
}  # fmt: skip
