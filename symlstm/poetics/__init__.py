"""Poetics: pure rules and tables of classical Chinese verse, importing nothing above them.

Read in this order: `script` (the writing system: punctuation, CJK, lines, the shipped tables),
`lexicon` (平水韻 tones and rhyme groups, 詞林正韻), `tunes` (ci templates), `forms` (the regulated
forms and form tokens), `verse` (patterns, named rules, the checker), `judge` (which form a
text is).
"""
