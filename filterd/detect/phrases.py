"""Curated phrases for the two flags the training data barely covers: ``threat`` and ``self_harm``.

These run beside the model, not instead of it: the model generalises, the table catches the
explicit wordings a supervisor or crisis route must never miss. Each row is
``(pattern, score, comment)``; the score says how explicit the wording is (0.9 first-person intent,
0.7-0.8 clear but indirect, 0.5-0.6 soft or conditional), so the policy can set its own threshold.

Patterns run over folded text: :func:`filterd.normalize.normalize` when it is importable (it
also undoes leetspeak, homoglyphs and spaced-out letters), else a light fold (lower case,
zero-width characters dropped); then one kind of apostrophe and collapsed whitespace. Offsets
are mapped back to the original text.
Figures of speech ("this bill is killing me", "shoot me an email", "I could kill for a coffee")
are kept out by requiring a *person* as the object of a violent verb, and *myself* (or an explicit
life/death phrase) for self-harm. Hyperbole without either, such as "kill me now lol",
"someone shoot me", "I'd rather die than call again" or "I can't take this anymore", is
deliberately not flagged: in customer-service chat it is overwhelmingly frustration, and routing
it to a crisis line would drown the real cases. A negation just before a hit ("I'm not going to",
"I would never") cancels it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence

from filterd.types import Span

__all__ = ["SELF_HARM_PATTERNS", "SEXUAL_PATTERNS", "THREAT_PATTERNS", "PhraseDetector",
           "find_self_harm", "find_sexual_harassment",
           "find_threats"]  # fmt: skip

SOURCE = "phrases"

# --- building blocks ---------------------------------------------------------------------------

# A filler word that is not a negation ("I'll *fucking* kill you", "I'll *just* overdose").
_ONE = r"(?: (?!(?:not|never|no|don't|dont|won't|wont|wouldn't|didn't|isn't|ain't)\b)[\w'*!@#$%-]+)"
_FILL = _ONE + "{0,3}?"
# First-person future or intent: "i'll", "i will", "i'm going to", "im gonna", "imma", "we'll".
_I_WILL = (
    r"\b(?:i(?:'ll|ll| will| shall|'m going to|'m gonna|m going to|m gonna| am going to| am gonna"
    r"| gonna| going to)|imma|ima|i'ma|we(?:'ll| will|'re going to|'re gonna| are going to| gonna))"
)
# First-person intent for self-harm, a wider net: plans, wishes, thoughts, modals.
_I_INTEND = (
    r"\b(?:(?:i|i'm|im|i am)(?: (?:just|really|seriously|honestly|actually|literally|kinda))?"
    r" (?:going to|gonna|about to|planning to|plan to|want to|wanna|need to|have to|intend to"
    r"|ready to|decided to|trying to|thinking about|thinking of|might|may|should|could|would|will)"
    r"|i'll|ill|i'd|imma|ima|i've decided to|i've been thinking about|i keep thinking about"
    r"|i can't stop thinking about)"
)
_HARM = (
    r"(?:kill|murder|shoot|stab|strangle|choke|slaughter|execute|beat(?: up)?|punch|hurt|attack"
    r"|assault|slap|smack|bash|stomp|rape|torture|gut|kick|break|cut|butcher|hang|lynch|shank"
    r"|maim|cripple|knife|run over)"
)
_STAFF_WORDS = (
    r"agents?|managers?|supervisors?|ceo|owners?|staff|employees?|reps?|representatives?"
    r"|boss|technicians?|tech|drivers?|cashiers?|clerks?|guy|lady|woman|man|person|people"
    r"|bitch|bastard|idiot|moron"
)
_PERSON = (
    r"(?:you(?: all| guys| people)?|u|ya|y'all|yall|him|her|them|all of you|every(?:one|body"
    r"| one of you| single one of you)|(?:your|ur) (?:family|kids|children|wife|husband|mother"
    r"|mom|coworkers|colleagues|"
    + _STAFF_WORDS
    + r")|(?:the|that|this|those|these) (?:"
    + _STAFF_WORDS
    + r")|whoever(?! (?:designed|wrote|made|invented|came up with|thought (?:of|up)|decided"
    r"|programmed|built|created|approved|set up)\b))\b"
)
# What follows "you" in harmless uses of violent verbs: "shoot you an email", "beat you to it".
_NOT_AFTER = (
    r"(?! (?:back|out|off|over|to it|to the punch|at (?:their|your|its|his|her) own game"
    r"|with kindness|some slack|an? (?:message|text"
    r"|note|line|deal|dm|call|break|check|cheque|email|e-mail|quote|invite|link)))"
)
_BODY = (
    r"(?:neck|legs?|arms?|face|jaw|nose|teeth|skull|head|throat|fingers|kneecaps|ribs|lights"
    r"|spine|balls|ass)"
)
_PLACE = (
    r"(?:store|shop|office|offices|building|place|house|branch|headquarters|hq|call cent(?:er|re)"
    r"|warehouse|car|factory|restaurant|location|business)"
)
_WEAPON = (
    r"(?:gun|guns|knife|knives|rifle|shotgun|pistol|piece|glock|machete|weapon|bat|baseball bat"
    r"|axe)"
)
# A weapon noun that is not the first half of a product's name ("knife set", "gun safe").
_WEAPON_NOUN = _WEAPON + (
    r"\b(?! (?:set|sets|block|blocks|sharpener|case|cases|safe|lock|locks|rack|bag|bags|kit|kits"
    r"|holster|licen[cs]e|permit|cleaning|cleaner|oil|cabinet|drawer|stand|sling|scope|parts?"
    r"|accessor\w*|box|cover|grip|mount|show|range|club|shop|store|sharpening|order|handle|roll)\b)"
)
# A place one takes a weapon to for an ordinary reason.
_ERRAND_PLACE = r"range|gunsmith|pawn|police|gun (?:shop|store|show|club)"
_NOT_AN_ERRAND = rf"(?!(?:{_ERRAND_PLACE})\b)"
# Where a brought weapon goes: "there", "to you", or to a place ("to the appointment"); the
# errands below rule out the range, the repair shop and the return desk. Not "in the": a knife
# that came "in the post" is a delivery.
_THERE = (
    r"(?:(?:down|over|up|in|out|round|around) )?(?:there|here)\b|to (?:you|u|y'all)\b"
    r"|(?:to|into|at|inside) (?:your|ur|yr|the|that|this) " + _NOT_AN_ERRAND + r"\w+"
)
# An everyday reason to carry one there: the rest of the sentence names a range, a repair or a
# return of the thing itself ("bringing my gun to the range", "for a refund", "to return it",
# "the handle split": a fault in a part of it, not "your service is broken").
# A refund the customer is owed is not one: "bringing my gun to your store to get my refund".
_ERRAND = (
    rf"(?![^.!?\n]*\b(?:{_ERRAND_PLACE}|hunting|repair|repairs"
    r"|repaired|warranty|servicing|serviced|sharpen|sharpened|sharpening|cleaning|appraisal"
    r"|trade[- ]in|cops|for an? (?:refund|return|exchange|replacement)|to (?:return|exchange"
    r"|sell|swap) (?:it|them)|(?:handle|blade|head|tip|lock|scope|grip|stock|trigger|barrel"
    r"|sheath|hinge)s? (?:is |are |was |has |have )?(?:split|cracked|chipped|broken|broke|bent"
    r"|loose|come loose|came loose|snapped|blunt|rusty|rusted))\b)"
)
_SELF_VERB = (
    r"(?:kill|killing|hurt|hurting|harm|harming|cut|cutting|hang|hanging|shoot|shooting|drown"
    r"|drowning|poison|poisoning|starve|starving|off|offing|burn|burning|suffocate|end|ending)"
)
_NEGATED = re.compile(
    r"(?:\bnot|\bnever|n't|\bdont|\bwont)(?: (?:going|gonna|want|wanna|planning|trying|about|to"
    r"|ever|even|really|actually|would|will|thinking|of|ready|intend|plan))* ?$"
)

# --- the tables --------------------------------------------------------------------------------

Row = tuple[str, float, str]

THREAT_PATTERNS: tuple[Row, ...] = (
    (_I_WILL + _FILL + rf" {_HARM} {_PERSON}{_NOT_AFTER}", 0.9,
     "first-person future intent to harm a person: I'll kill you, I'm gonna beat you up"),
    (rf"\bi (?:want|wanna|would like|'d like|'d love|would love|need|am tempted|'m tempted)"
     rf"(?: to)?{_FILL} {_HARM} {_PERSON}{_NOT_AFTER}", 0.8,
     "stated wish to harm a person: I want to strangle you"),
    (rf"\bi(?: could|'d| would| might| should)(?: just| seriously| literally| honestly)?"
     rf" {_HARM} {_PERSON}{_NOT_AFTER}", 0.6,
     "conditional, often hyperbole but aimed at a person: I could kill you right now"),
    (rf"\b(?:someone|somebody|some1|people) (?:should|needs? to|ought to|oughta|gotta|has to"
     rf"|is going to|'s going to|is gonna|'s gonna|will|'ll) {_HARM} {_PERSON}{_NOT_AFTER}", 0.75,
     "incitement: someone should shoot the manager"),
    (_I_WILL + _FILL + r" hit (?:you|u|y'all)\b(?! up| back| with (?:the|some|an?"
     r" (?:email|message|text|call|update|link|quote|offer)))", 0.8,
     "I'm going to hit you (not: hit you up / hit you back)"),
    (_I_WILL + _FILL + r" end (?:you|u|y'all|you all)\b(?! an?\b)", 0.85, "I will end you"),
    (_I_WILL + _FILL + rf" (?:break|snap|smash|bash|kick|punch|knock|rip|tear|cut|slit|wring"
     rf"|crush|cave) (?:your|ur|his|her|their)(?: \w+)? {_BODY}\b", 0.9,
     "bodily harm: I'll break your neck, slit your throat, punch your lights out"),
    (rf"\bi(?: could|'d| would| want to| wanna|'d like to| would like to) (?:break|snap|smash"
     rf"|punch|rip|slit|wring|strangle|choke) (?:your|ur)(?: \w+)? {_BODY}\b", 0.6,
     "conditional bodily harm: I could wring your neck"),
    (rf"\b{_PERSON} (?:should|ought to|deserves? to|needs? to|is going to|are going to"
     r"|'s going to|'re going to|will|'ll)(?: \w+)? (?:be|get) (?:shot|killed|murdered|stabbed"
     r"|beaten(?: up)?|hanged|hung|lynched|strung up|punched|hurt|tortured|raped)\b", 0.7,
     "violence wished on or predicted for a person: the manager deserves to be shot"),
    (rf"\b{_PERSON} (?:should|deserves? to|needs? to|ought to|is going to|are going to"
     r"|'s going to|'re going to|will|'ll) die\b", 0.7, "you will die, you deserve to die"),
    (r"\b(?:someone|somebody|people|you|u|your \w+)(?: is| are|'s|'re| will|'ll| might| could)"
     r" (?:going to |gonna )?get (?:seriously )?(?:hurt|killed|shot|stabbed|beaten)", 0.75,
     "implicit threat: someone's going to get hurt"),
    (r"\bi hope (?:you|u|y'all|your (?:family|kids|manager|boss|ceo|staff)|the (?:manager|ceo"
     r"|agent|owner)|whoever \w+(?: \w+)?)(?: \w+)? (?:die|dies|gets? (?:cancer|killed|shot"
     r"|stabbed|raped|run over|hit by a (?:car|bus|truck))|burns? in hell|rots? in hell)", 0.6,
     "wishing death or harm: hostile though not a plan"),
    (r"\b(?:you|u)(?:'d| had|d)? (?:better|best) watch (?:your|ur|yo) back\b", 0.85,
     "you'd better watch your back"),
    (r"\bwatch (?:your|ur|yo) back\b", 0.7, "watch your back, without the 'better'"),
    (r"\bsleep with one eye open\b", 0.8, "classic veiled threat"),
    (r"\byour days are numbered\b", 0.7, "veiled threat"),
    (r"\byou (?:won't|will not|wont) see (?:it|me) coming\b", 0.75, "veiled threat"),
    (r"\b(?:you|u)(?:'re| are|r|re) (?:a )?dead (?:man|meat|woman)\b", 0.85, "you're a dead man"),
    (r"\b(?:you|u)(?:'re| are|r|re)(?: so)? dead\b(?! (?:to|inside|wrong|serious|tired|set|on"
     r"|right|last|centre|center|end|weight))", 0.75, "you're dead (not: dead to me, dead wrong)"),
    (r"\bi know where (?:you|u|your \w+|the manager|he|she|they|y'all) (?:live|lives|work|works"
     r"|sleep|sleeps|park|parks)\b", 0.85, "I know where you live"),
    (_I_WILL + _FILL + r" (?:find|find out|look up|track down|figure out|hunt down|get) (?:where"
     r"|what) (?:you|u|your \w+|the manager|he|she|they) (?:live|lives|work|works|sleep"
     r"|sleeps)\b", 0.85, "I'm going to find where you work"),
    (r"\b(?:hunt|track) (?:you|u|them|him|her|y'all|you all|every one of you|your \w+) down\b",
     0.8, "hunt you down"),
    (_I_WILL + _FILL + r" find (?:you|u)\b(?= ?(?:[.!]|$|and\b))", 0.7, "I will find you."),
    (_I_WILL + _FILL + r" (?:wait|be waiting) for (?:you|u|your \w+) (?:outside|after (?:work"
     r"|your shift)|in the parking lot|at your car)", 0.85, "waiting for you outside"),
    (_I_WILL + r" (?:see|get|catch|meet) (?:you|u) (?:outside|after (?:work|your shift)|in the"
     r" parking lot)", 0.8, "I'll catch you outside"),
    (_I_WILL + _FILL + r" (?:come|go|drive|head|get) (?:down |over |back |in )?(?:there|here"
     r"|to (?:your|the|that) \w+|to you)" + _ONE + r"{0,3}? and" + _ONE + rf"{{0,2}}? (?:{_HARM}"
     rf"|smash|wreck|trash|burn|shoot up|tear up) (?:{_PERSON}|(?:up )?(?:your|the|this|that) "
     rf"(?:{_PLACE}|windows?|counter|computers?))", 0.85,
     "I'll come down there and beat you"),
    (_I_WILL + _FILL + r" (?:burn|torch|blow up|bomb|firebomb|smash up|shoot up|set fire to|nuke"
     rf"|light up) (?:down )?(?:your|the|this|that|ur)(?: \w+)? {_PLACE}\b", 0.9,
     "attack on premises: I'll burn your store down, I'm going to shoot up the place"),
    (rf"\b(?:burn|torch) (?:your|the|this|that|ur)(?: \w+)? {_PLACE} (?:down|to the ground)\b",
     0.8, "burn this place down, without an explicit 'I'"),
    (r"\b(?:there(?:'s| is| has been| have been| are) (?:a |an |some )?(?:bomb|explosive|ied"
     r"|dynamite)s? (?:in|at|under|inside|on|onto|aboard|near|planted|placed|set|hidden)"
     r"|(?:planted|placed|put|hid|left|hidden) (?:a|an|some) (?:bomb|explosive|ied|dynamite)"
     r"|(?:bomb|explosive|ied|dynamite)s? (?:has|have) been (?:placed|planted|hidden|put|left)"
     r"|(?:have|got|built|made|bring|bringing) (?:a|an) (?:bomb|explosive|ied)s? (?:in|at|to"
     rf"|under|inside|into|near)|bomb (?:in|at|under|inside) (?:your|the|this|that) {_PLACE})",
     0.95, "bomb threat (also dynamite, and 'there has been ... placed')"),
    (_I_WILL + _FILL + r" (?:bring|come (?:back |in |down )?with|show up with|pull out|pull)"
     rf" (?:a|my|the|my \w+) {_WEAPON_NOUN}{_ERRAND}", 0.85,
     "bringing a weapon (not: the knife set back for a refund, my rifle for a repair)"),
    (r"\bi(?:'ve| have)(?: got)? (?:a|my) (?:gun|knife|rifle|shotgun|pistol)(?: \w+)? (?:and"
     r"|with me|right here|in my|on me|loaded)\b(?![^.!?\n]*\b(?:myself|my (?:own )?life|end it"
     r"|suicid\w*|kill me)\b)", 0.75,
     "I have a gun and ... (not when the sentence turns it on oneself: that is self-harm)"),
    (_I_WILL + _FILL + r" make (?:you|u|sure you) (?:suffer|bleed)\b", 0.8, "I'll make you bleed"),
    (r"\b(?:i'm|i am|im|i'll|i will|about to|gonna|going to) go(?:ing)? postal\b", 0.75,
     "going postal"),
    (r"\b(?:i'm|im|i am|we're|we are) (?:coming|gunning) for (?:you|u|y'all|your (?:family"
     r"|manager|boss|staff|head))\b", 0.75, "I'm coming for you (not: coming for my refund)"),
    (r"\b(?:go |just |you should |u should )?(?:kill|hang|shoot) (?:yourself|urself|yourselves)\b"
     r"|\bkys\b", 0.6, "urging the agent to self-harm: harm aimed at someone else, so a threat"),
    # Forms without "I will" that chat drops or that name the weapon or the act instead.
    (r"\b(?:a|the) (?:knife|blade|bullet|shiv) (?:in|into|through|between) (?:the|your|ur|his|her"
     r"|their)(?: \w+)? (?:ribs|gut|guts|belly|stomach|chest|neck|throat|head|face|eye|skull)\b",
     0.85, "a knife in the ribs (not: a knife in the back, betrayal)"),
    (r"\b(?:put|putting|pump|pumping) (?:a|some|one|\d+) (?:bullets?|rounds?|slugs?|holes?)"
     r" (?:in|into|through)\b", 0.9, "put a bullet in your CEO"),
    (r"\b(?:bring|bringing|grab|grabbing|carry|carrying) (?:my|a|the"
     rf"|a loaded|my loaded) (?!bat\b|baseball bat\b|piece\b){_WEAPON_NOUN}{_ERRAND}"
     rf"(?: \w+){{0,3}}? (?:{_THERE})", 0.85,
     "bringing my gun to your store, my knife in there (subject often dropped in chat; not: to"
     " the range, for a repair or a refund)"),
    (r"\b(?:i'll|ill|i will|i'm|im|i am|gonna|going to|about to)(?: \w+){0,2}? (?:come|coming"
     r"|show up|showing up|turn up|turning up|walk|walking|be)(?: (?:down|over|back|in|up|round"
     rf"|around))?(?: (?:there|here|(?:to|at) (?:your|ur|the|that) {_NOT_AN_ERRAND}\w+))?"
     rf"(?: \w+){{0,2}}? with (?:a|my|the|a loaded|my loaded) {_WEAPON_NOUN}{_ERRAND}", 0.85,
     "I'm coming down there with my gun, show up at your branch with a knife"),
    (r"\b(?:i'll|ill|i will|i'm|im|i am|gonna|going to)(?: \w+){0,2}? (?:be )?(?:waiting|wait)"
     r" (?:for (?:you|u) (?:outside|in the (?:car ?park|parking lot)|by your car)\b|(?:outside"
     r"|in the (?:car ?park|parking lot)|by your car)(?: (?:of )?(?:your|ur|the|that) \w+)?"
     r"(?: (?:tonight|today|tomorrow|later|again|every day))?"
     r" (?:for (?:you|u|y'all|(?:that|this|those) (?:" + _STAFF_WORDS + r"))\b"
     r"|(?:when|till|until|til|for when) (?:you|u|ur shift|your shift|you guys|the (?:store"
     r"|shop|office)) (?:close|closes|finish|finishes|get off|gets off|leave|leaves|come out"
     r"|clock off|ends?)\b|after (?:work|your shift|closing)\b))", 0.75,
     "I'll be waiting outside when you close (not: outside for the courier, until you open)"),
    (r"\b(?:come|coming|go|going|drive|driving|head|heading|show up|turn up)(?: down| over| back"
     r"| in)? (?:there|to (?:your|the|that) \w+(?: \w+)?)(?: \w+){0,3}? and (?:smash|wreck|trash"
     r"|beat|hurt|stab|shoot|kill|break|burn|torch|punch|kick|deck|knock|strangle|choke)\b", 0.8,
     "coming down there and smashing ..."),
    (r"\b(?:i|we) know (?:where|which|what) (?:you|u|your \w+|ur \w+)(?: \w+)? (?:live|lives"
     r"|work|works|park|parks|sleep|go to school)\b", 0.8, "I know where you live / which store"),
)  # fmt: skip

# Sexual harassment aimed at the agent: the public data has little of it, and the
# canonical forms are formulaic. Compliments ("you've been helpful, thanks love") and
# innocent photo requests ("send a picture of the router") must not match.
SEXUAL_PATTERNS: tuple[Row, ...] = (
    (r"\bwhat (?:are|r) (?:you|u|ya) wearing\b", 0.8, "what are you wearing"),
    (r"\bsend (?:me )?(?:some )?(?:nudes|noods|naked (?:pics|photos))\b", 0.95, "send nudes"),
    (r"\b(?:send|show|give) (?:me )?(?:a |some |ur |your |one )?(?:pic|pics|picture|pictures"
     r"|photo|photos|selfie|selfies|snap|snaps)(?: of)? (?:you|u|yourself|urself|your (?:body"
     r"|face|legs|ass|tits|boobs))\b", 0.8, "send me a pic of you"),
    (r"\b(?:send|show) (?:me )?(?:a |some |ur |your )?(?:pic|pics|picture|photo|selfie)s?"
     r" (?:babe|baby|sweetheart|sweetie|honey|hun|sexy|darling|gorgeous|beautiful)\b", 0.8,
     "send pics babe"),
    (r"\b(?:you|u|ya) (?:sound|look|are|r|seem)(?: so| really| very| pretty| damn)? (?:sexy"
     r"|hot|horny|fuckable|doable|naughty)\b", 0.75, "you sound so sexy"),
    (r"\b(?:suck|lick|touch|grab|sit on|ride) (?:my|me)\b(?! (?:up|back|account|bill|phone|line"
     r"|order|data))|\bblow me\b(?! away)|\bbend over\b", 0.8, "explicit requests"),
    (r"\b(?:in bed with|sleep with|hook up with|have sex with|fuck) (?:you|u|ya)\b"
     r"(?! (?:guys|people|all))|\b(?:your|ur) (?:body|boobs|tits|ass|legs|lips|breasts)\b", 0.75,
     "remarks on the agent's body or sex"),
    (r"\b(?:(?:are|r) (?:you|u) single|(?:go|come) out with me|date with me|(?:your|ur)"
     r" (?:number|address) (?:babe|baby|sweetheart|sexy|gorgeous))\b", 0.45,
     "soft: asking the agent out (alone below the flag threshold)"),
)  # fmt: skip

SELF_HARM_PATTERNS: tuple[Row, ...] = (
    (_I_INTEND + _FILL + rf" {_SELF_VERB} myself\b(?! in the foot)", 0.9,
     "explicit first-person intent: I want to kill myself, I'll hurt myself"),
    (r"\b(?:kill|killing|hang|hanging|drown|drowning|poison|poisoning|starve|starving|off|offing"
     r"|suffocate|suffocating|end|ending) myself\b", 0.8,
     "a lethal verb on 'myself' in any frame: thinking of killing myself"),
    (r"\b(?:shoot|shooting) myself\b(?! in the (?:foot|feet|leg))", 0.7,
     "shoot myself (not: shot myself in the foot)"),
    (r"\b(?:i've|i have|i|i'm|i am) (?:been |started |keep |kept )(?:cutting|hurting|harming"
     r"|burning) myself\b", 0.85, "ongoing self-harm: I've been cutting myself"),
    (_I_INTEND + _FILL + r" (?:end(?:ing)? it all|end(?:ing)? my (?:own )?life|tak(?:e|ing) my"
     r" (?:own )?life)\b", 0.9, "I'm going to end it all, I want to take my life"),
    (r"\b(?:end|ending|ended|take|taking) my (?:own )?life\b", 0.85,
     "thinking about ending my life"),
    (r"\bend(?:ing)? it all\b", 0.8,
     "end it all: flagged even in a frustrated frame, a human can tell"),
    (rf"\b(?:i'm|im|i am|i feel|i've been|i have been|feeling|been feeling|i get|i keep getting)"
     rf"{_ONE}? suicidal\b", 0.9, "I'm suicidal, feeling suicidal"),
    (r"\bsuicidal (?:thoughts|ideation|feelings|urges)\b", 0.8, "suicidal thoughts"),
    (r"\b(?:i|i'm|im|i am|i've|i will|i'll|i want to|going to|gonna)" + _FILL
     + r" (?:commit|attempt|try) suicide\b", 0.9, "I'm going to commit suicide"),
    (r"\b(?:thinking|thought|think|thinkin) (?:about|of) (?:suicide|dying|not being here"
     r"|not being alive)\b", 0.85, "thinking about suicide"),
    (r"\b(?:my|a) suicide note\b", 0.8, "wrote a suicide note"),
    (r"\bi(?: just| really| honestly| seriously)? (?:want|wanna|wish i could|am ready|'m ready)"
     r"(?: to)? (?:die|be dead|not exist|not be alive|disappear forever|sleep forever"
     r"|never wake up)\b(?! (?:of|laughing|from|for|when|if|in|at|than|because|every))", 0.85,
     "I want to die (not: want to die of embarrassment)"),
    (r"\bi wish i (?:was|were) (?:dead|never born|gone|not alive)\b", 0.85, "I wish I was dead"),
    (r"\bi wish i (?:could )?(?:die|just die|not wake up|never woke up|never wake up)\b(?! (?:of"
     r"|laughing|from))", 0.8, "I wish I could just die"),
    (r"\b(?:i )?(?:don't|do not|dont) (?:want|wanna)(?: to)? (?:live|be alive|exist|wake up"
     r"|go on|be around)\b(?! (?:in|with|like|on|at|near|there|here|without|through|under|a\b"
     r"|the|this|that))", 0.85, "I don't want to live anymore"),
    (r"\b(?:i )?(?:don't|do not|dont) (?:want|wanna)(?: to)? be here (?:anymore|any more"
     r"|no more)\b", 0.5, "soft: 'be here' may mean this chat or this store"),
    (r"\b(?:no ?one|nobody|noone|no-one)(?: \w+)? (?:would|will|'d|'ll|is going to|even)"
     r" (?:miss|notice|care about|care)(?: \w+)? (?:me|if i (?:was|were|am|'m|died|die"
     r"|disappeared|wasn't here|weren't here|wasn't around|weren't around|killed))\b", 0.8,
     "nobody would miss me if I was gone"),
    (r"\b(?:everyone|everybody|the world|my family|my kids|they|people|you all|everyone else)"
     r"(?: \w+)? (?:would|will|'d|'ll) be better off (?:without me|if i (?:was|were|wasn't"
     r"|weren't) (?:dead|gone|here|around))", 0.85, "everyone would be better off without me"),
    (r"\b(?:i'm|im|i am|i'd be|i would be|i'll be|i will be) better off dead\b", 0.85,
     "better off dead"),
    (r"\bi (?:can't|cannot|can not|cant) go on\b(?= ?(?:[.!?,;]|$|like this|anymore|any more"
     r"|any longer|with (?:my )?life))", 0.7,
     "I can't go on (not: can't go on the website)"),
    (r"\bi (?:can't|cannot|can not|cant) (?:go on|keep on|keep) living\b", 0.8,
     "I can't go on living like this"),
    (r"\bno (?:reason|point) (?:to|in) (?:live|living|going on|being alive|being here)\b", 0.8,
     "no reason to live"),
    (r"\b(?:life (?:is not|isn't|isnt|ain't) worth living|(?:not|no longer) worth living)\b",
     0.8, "life isn't worth living"),
    (_I_INTEND + _FILL + r" (?:overdose|od|take (?:all|a bunch|a handful|the rest)(?: of)?"
     r" (?:my|the|these|those) (?:pills|meds|medication|tablets|sleeping pills|painkillers))\b",
     0.9, "I'll just overdose"),
    (r"\b(?:took|swallowed|taking|take|swallow) (?:all|a whole bottle|a bottle|the whole bottle"
     r"|a handful)(?: of)? (?:my |the |these |those )?(?:pills|sleeping pills|meds|medication"
     r"|tablets|painkillers)\b", 0.8, "took all my pills"),
    (_I_INTEND + _FILL + r" (?:jump|throw myself) (?:off|from|in front of|under) (?:a|the|my)"
     r"(?: \w+)? (?:bridge|building|roof|cliff|balcony|train|bus|truck|car|window)", 0.85,
     "jump off a bridge"),
    (r"\bi(?:'ve| have|'m| am)? (?:been )?self[- ]?harm(?:ing|ed)?\b", 0.85,
     "I've been self-harming"),
    # SMS drops the subject: "been cutting myself again", "gonna jump off the bridge".
    (r"(?:^|[.!?,;] ?)(?:been |started |keep |still )(?:cutting|hurting|harming|burning) myself\b",
     0.85, "been cutting myself (no subject)"),
    (r"\b(?:gonna|going to|about to|want to|wanna|might|will)(?: just)? (?:jump|throw myself)"
     r" (?:off|from|in front of|under) (?:a|the|my)(?: \w+)? (?:bridge|building|roof|cliff"
     r"|balcony|train|bus|truck|car|window)", 0.85, "gonna jump off the bridge"),
    (r"\b(?:pills|meds|medication|tablets|sleeping pills|painkillers) (?:saved|stashed"
     r"|stockpiled|hoarded|put aside|ready)\b|\b(?:saving|saved|stockpiling|stockpiled|hoarding"
     r"|stashing) (?:up )?(?:my |some |all my )?(?:pills|meds|medication|tablets|sleeping pills"
     r"|painkillers)\b", 0.85, "pills saved up"),
    (r"\b(?:knife|knives|blade|razor|gun|rope|pills)\b[^.!?\n]{0,60}\b(?:use|using) (?:it|them)"
     r" on myself\b", 0.8, "a knife in my hand ... using it on myself"),
    (r"\b(?:wrote|written|writing|write|left|leaving) (?:my |a |some )?(?:goodbye|farewell)"
     r" (?:letters?|notes?|messages?)\b", 0.85, "written my goodbye letters"),
)  # fmt: skip


def _compile(rows: tuple[Row, ...]) -> tuple[tuple[re.Pattern[str], float], ...]:
    return tuple((re.compile(pattern), score) for pattern, score, _comment in rows)


_THREATS = _compile(THREAT_PATTERNS)
_SELF_HARM = _compile(SELF_HARM_PATTERNS)
_SEXUAL = _compile(SEXUAL_PATTERNS)


def _any_of(table: tuple[tuple[re.Pattern[str], float], ...]) -> re.Pattern[str]:
    """One alternation of a whole table: it finds a match iff some pattern matches somewhere
    (at each position every alternative is tried), so a message that matches nothing (most
    messages) is ruled out by one scan instead of one per pattern: ~3x faster on the threat
    and harassment tables (speed, issue 5)."""
    return re.compile("|".join(f"(?:{p.pattern})" for p, _ in table))


_ANY = {id(t): _any_of(t) for t in (_THREATS, _SELF_HARM, _SEXUAL)}

# --- normalisation with an offset map ----------------------------------------------------------

# (folded text, original start of each folded char, original end of each folded char)
Folded = tuple[str, Sequence[int], Sequence[int]]

_APOSTROPHES = "\u2018\u2019\u201b\u02bc\u02b9\u0060\u00b4\u2032\uff07"
_ZERO_WIDTH = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad"
_APOS_TABLE = str.maketrans(dict.fromkeys(_APOSTROPHES, "'"))
_DROP_ZERO_WIDTH = str.maketrans(dict.fromkeys(_ZERO_WIDTH))
# Whitespace that is not a single plain space changes offsets when collapsed.
_ODD_SPACE = re.compile(r"\s\s|[^\S ]")


def _light_fold(text: str) -> Folded:
    """Lower-case and drop zero-width characters (the fallback when filterd.normalize is absent)."""
    lowered = text.lower()
    if len(lowered) == len(text) and text.translate(_DROP_ZERO_WIDTH) == text:
        return lowered, range(len(text)), range(1, len(text) + 1)
    out: list[str] = []
    starts: list[int] = []
    for i, ch in enumerate(text):
        if ch not in _ZERO_WIDTH:
            low = ch.lower()
            out.append(low)
            starts.extend([i] * len(low))
    return "".join(out), starts, [i + 1 for i in starts]


def _shared_fold() -> Callable[[str], Folded] | None:
    """filterd.normalize when it is there: it also undoes leetspeak, homoglyphs, "k i l l"."""
    try:
        from filterd.normalize import normalize
    except ImportError:  # written in parallel; the light fold is enough on its own
        return None

    def fold(text: str) -> Folded:
        folded = normalize(text)
        return folded.text, folded.offsets, folded.ends

    return fold


_FOLD: Callable[[str], Folded] = _shared_fold() or _light_fold


def _normalise(text: str) -> Folded:
    """Fold, unify apostrophes, collapse whitespace; keep the map back to ``text``."""
    folded, starts, ends = _FOLD(text)
    folded = folded.translate(_APOS_TABLE)  # one char for one char: maps unchanged
    if _ODD_SPACE.search(folded) is None:
        return folded, starts, ends
    out: list[str] = []
    keep: list[int] = []  # folded positions kept; a whitespace run keeps its first char
    for i, ch in enumerate(folded):
        if ch.isspace():
            if out and out[-1] == " ":
                continue
            ch = " "
        out.append(ch)
        keep.append(i)
    return "".join(out), [starts[i] for i in keep], [ends[i] for i in keep]


def _find(text: str, table: tuple[tuple[re.Pattern[str], float], ...], kind: str) -> list[Span]:
    norm, starts, ends = _normalise(text)
    if _ANY[id(table)].search(norm) is None:
        return []
    hits: list[tuple[int, int, float]] = []
    for pattern, score in table:
        for m in pattern.finditer(norm):
            if m.end() == m.start() or _NEGATED.search(norm, max(0, m.start() - 40), m.start()):
                continue
            hits.append((m.start(), m.end(), score))
    return [
        Span(starts[s], ends[e - 1], kind, score, SOURCE) for s, e, score in _drop_overlaps(hits)
    ]


def _drop_overlaps(hits: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """One hit per region: the most explicit reading wins, then the longest; sorted by start."""
    hits.sort(key=lambda h: (-h[2], h[0] - h[1], h[0]))
    starts: list[int] = []
    kept: list[tuple[int, int, float]] = []  # sorted by start, parallel to ``starts``
    for hit in hits:
        i = bisect.bisect_right(starts, hit[0])
        if (i > 0 and kept[i - 1][1] > hit[0]) or (i < len(kept) and kept[i][0] < hit[1]):
            continue
        starts.insert(i, hit[0])
        kept.insert(i, hit)
    return kept


def find_threats(text: str) -> list[Span]:
    """Threats of violence or harm to the agent or anyone else, as ``threat`` spans by start."""
    return _find(text, _THREATS, "threat")


def find_sexual_harassment(text: str) -> list[Span]:
    """Sexual remarks or requests aimed at the agent, as ``sexual_harassment`` spans."""
    return _find(text, _SEXUAL, "sexual_harassment")


def find_self_harm(text: str) -> list[Span]:
    """Intent or ideation to harm oneself, as ``self_harm`` spans sorted by start."""
    return _find(text, _SELF_HARM, "self_harm")


class PhraseDetector:
    """Both phrase tables behind one verb, for the pipeline's detector list.

    Spans of one kind never overlap; a ``threat`` and a ``self_harm`` span may
    ("I'll kill you and then myself").
    """

    def find(self, text: str) -> list[Span]:
        """``threat`` and ``self_harm`` spans in ``text``, sorted by start."""
        spans = find_threats(text) + find_self_harm(text) + find_sexual_harassment(text)
        spans.sort(key=lambda s: (s.start, s.end, s.kind))
        return spans
