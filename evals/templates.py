"""Prompt templates, answer prefixes and generation budgets of the benchmarks.

The RULER templates are the short task definitions from NVIDIA/RULER
(scripts/data/synthetic/constants.py); the NIAH ones follow gkamradt's defaults.
"""

NIAH_NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."

RULER = {
    "niah": {
        "tokens_to_generate": 128,
        "template": (
            "Some special magic {type_needle_v} are hidden within the following text. Make sure "
            "to memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
            "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
        ),
        "answer_prefix": " The special magic {type_needle_v} for {query} mentioned in the provided text are",
    },
    "variable_tracking": {
        "tokens_to_generate": 30,
        "template": (
            "Memorize and track the chain(s) of variable assignment hidden in the following text."
            "\n\n{context}\nQuestion: Find all variables that are assigned the value {query} in "
            "the text above."
        ),
        "answer_prefix": (
            " Answer: According to the chain(s) of variable assignment in the text above, {num_v} "
            "variables are assigned the value {query}, they are: "
        ),
    },
    "common_words_extraction": {
        "tokens_to_generate": 120,
        "template": (
            "Below is a numbered list of words. In these words, some appear more often than "
            "others. Memorize the ones that appear most often.\n{context}\nQuestion: What are "
            "the 10 most common words in the above list?"
        ),
        "answer_prefix": " Answer: The top 10 words that appear most often in the list are:",
    },
    "freq_words_extraction": {
        "tokens_to_generate": 50,
        "template": (
            "Read the following coded text and track the frequency of each coded word. Find the "
            "three most frequently appeared coded words. {context}\nQuestion: Do not provide any "
            "explanation. Please ignore the dots '....'. What are the three most frequently "
            "appeared words in the above coded text?"
        ),
        "answer_prefix": (
            " Answer: According to the coded text above, the three most frequently appeared words are:"
        ),
    },
    "qa": {
        "tokens_to_generate": 32,
        "template": (
            "Answer the question based on the given documents. Only give me the answer and do "
            "not output any other words.\n\nThe following are given documents.\n\n{context}\n\n"
            "Answer the question based on the given documents. Only give me the answer and do "
            "not output any other words.\n\nQuestion: {query}"
        ),
        "answer_prefix": " Answer:",
    },
}
QA_DOCUMENT = "Document {i}:\n{document}"

# gkamradt/LLMTest_NeedleInAHaystack defaults
NIAH_SYSTEM = "You are a helpful AI bot that answers questions for a user. Keep your response short and direct"
NIAH_DEFAULT_NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
NIAH_DEFAULT_QUESTION = "What is the best thing to do in San Francisco?"
NIAH_DEFAULT_ANSWERS = ("sandwich", "Dolores Park")
NIAH_QUESTION_SUFFIX = " Don't give information outside the document or repeat your findings"
NIAH_MULTI_NEEDLES = (
    "Figs are one of the secret ingredients needed to build the perfect pizza.",
    "Prosciutto is one of the secret ingredients needed to build the perfect pizza.",
    "Goat cheese is one of the secret ingredients needed to build the perfect pizza.",
)
NIAH_MULTI_QUESTION = "What are the secret ingredients needed to build the perfect pizza?"
NIAH_MULTI_ANSWERS = ("figs", "prosciutto", "goat cheese")
NIAH_TOKENS_TO_GENERATE = 64

# the gkamradt grid as one base-task entry (its question goes where RULER's query goes)
NIAH_GRID = {
    "tokens_to_generate": NIAH_TOKENS_TO_GENERATE,
    "template": NIAH_SYSTEM + "\n\n{context}\n\n{query}" + NIAH_QUESTION_SUFFIX,
    "answer_prefix": "\nAnswer:",
}
