//! The semantic cache's second stage. The nearest earlier question by embedding is only a
//! candidate: it must reach the cosine threshold, and then it is rejected when the two questions
//! carry different numbers ("Is 7 prime?" / "Is 9 prime?") or one is negated and the other is not
//! — what a sentence embedding blurs. Measured on Quora question pairs (BENCHMARKS.md), such
//! candidates are right less than half as often as the rest. A logistic model over all of
//! [`Features`] (and a head over the two embeddings) was fitted too and gained at most a point
//! or two of hit rate at the same false-hit rate, so the rule stays simple.

use std::collections::HashSet;

/// Cheap comparisons of two questions; every value is in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Features {
    /// Cosine similarity of the embeddings.
    pub cosine: f32,
    /// Jaccard overlap of content words.
    pub overlap: f32,
    /// Share of content words that appear in only one of the two.
    pub unmatched: f32,
    /// Most content words either side has that the other lacks, over 4 (capped at 1).
    pub max_unmatched_side: f32,
    /// The numbers differ.
    pub numbers_differ: f32,
    /// One is negated and the other is not.
    pub negation_differs: f32,
    /// They open with different question words (how vs why, ...).
    pub question_word_differs: f32,
    /// Shorter over longer, in words.
    pub length_ratio: f32,
}

pub const FEATURE_NAMES: [&str; 8] = [
    "cosine",
    "overlap",
    "unmatched",
    "max_unmatched_side",
    "numbers_differ",
    "negation_differs",
    "question_word_differs",
    "length_ratio",
];

impl Features {
    pub fn as_array(&self) -> [f32; 8] {
        [
            self.cosine,
            self.overlap,
            self.unmatched,
            self.max_unmatched_side,
            self.numbers_differ,
            self.negation_differs,
            self.question_word_differs,
            self.length_ratio,
        ]
    }
}

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "i", "me", "my",
    "you", "your", "we", "our", "it", "its", "he", "she", "they", "them", "their", "this", "that", "these", "those",
    "of", "in", "on", "at", "to", "for", "from", "by", "with", "about", "as", "into", "and", "or", "but", "if", "so",
    "what", "why", "how", "when", "where", "who", "whom", "which", "can", "could", "should", "would", "will", "shall",
    "may", "might", "must", "there", "here", "any", "some", "s", "t", "get", "one", "ever", "really", "much", "many",
];
const NEGATIONS: &[&str] = &["not", "no", "never", "without", "nothing", "nobody", "none", "cannot", "neither", "nor"];
const QUESTION_WORDS: &[&str] = &["what", "why", "how", "when", "where", "who", "which", "whom", "whose"];

struct Words {
    content: HashSet<String>,
    numbers: HashSet<String>,
    negated: bool,
    question_word: Option<&'static str>,
    count: usize,
}

fn words(text: &str) -> Words {
    let mut content = HashSet::new();
    let mut numbers = HashSet::new();
    let mut negated = false;
    let mut question_word = None;
    let mut count = 0;
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let raw = raw.trim_matches('\'');
        if raw.is_empty() {
            continue;
        }
        count += 1;
        let word = raw.to_lowercase();
        if word.ends_with("n't") || NEGATIONS.contains(&word.as_str()) {
            negated = true;
        }
        if question_word.is_none() {
            question_word = QUESTION_WORDS.iter().find(|q| **q == word).copied();
        }
        if word.chars().any(|c| c.is_ascii_digit()) {
            numbers.insert(word.clone());
        }
        let word = word.strip_suffix("'s").unwrap_or(&word);
        if !STOPWORDS.contains(&word) && !NEGATIONS.contains(&word) {
            content.insert(stem(word).to_owned());
        }
    }
    Words { content, numbers, negated, question_word, count }
}

/// A light plural/tense fold so "learn" matches "learning" and "books" matches "book".
fn stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if word.len() > suffix.len() + 3
            && let Some(stem) = word.strip_suffix(suffix)
        {
            return stem;
        }
    }
    word
}

pub fn features(query: &str, candidate: &str, cosine: f32) -> Features {
    let (a, b) = (words(query), words(candidate));
    let shared = a.content.intersection(&b.content).count();
    let union = a.content.len() + b.content.len() - shared;
    let only_a = a.content.len() - shared;
    let only_b = b.content.len() - shared;
    let flag = |differs: bool| if differs { 1.0 } else { 0.0 };
    Features {
        cosine,
        overlap: if union == 0 { 1.0 } else { shared as f32 / union as f32 },
        unmatched: if union == 0 { 0.0 } else { (only_a + only_b) as f32 / union as f32 },
        max_unmatched_side: (only_a.max(only_b) as f32 / 4.0).min(1.0),
        numbers_differ: flag(a.numbers != b.numbers),
        negation_differs: flag(a.negated != b.negated),
        question_word_differs: flag(a.question_word != b.question_word),
        length_ratio: if a.count.max(b.count) == 0 {
            1.0
        } else {
            a.count.min(b.count) as f32 / a.count.max(b.count) as f32
        },
    }
}

/// Why a candidate was or was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    BelowThreshold,
    NumbersDiffer,
    NegationDiffers,
}

pub struct Verifier {
    threshold: f32,
}

impl Verifier {
    pub fn new(threshold: f32) -> Self {
        Self { threshold }
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Judges a candidate; the word-level checks run only above the threshold.
    pub fn verdict(&self, query: &str, candidate: &str, cosine: f32) -> Verdict {
        if cosine < self.threshold {
            return Verdict::BelowThreshold;
        }
        let features = features(query, candidate, cosine);
        if features.numbers_differ > 0.5 {
            Verdict::NumbersDiffer
        } else if features.negation_differs > 0.5 {
            Verdict::NegationDiffers
        } else {
            Verdict::Accepted
        }
    }

    pub fn accepts(&self, query: &str, candidate: &str, cosine: f32) -> bool {
        self.verdict(query, candidate, cosine) == Verdict::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_negations_veto_a_close_candidate() {
        let verifier = Verifier::new(0.9);
        assert_eq!(verifier.verdict("What is 2 + 2?", "What is 2 + 3?", 0.99), Verdict::NumbersDiffer);
        assert_eq!(verifier.verdict("Is coffee healthy?", "Is coffee not healthy?", 0.97), Verdict::NegationDiffers);
        assert_eq!(verifier.verdict("Is coffee healthy?", "Is coffee good for you?", 0.89), Verdict::BelowThreshold);
        assert!(verifier.accepts("What is the capital of France?", "What's the capital of France?", 0.98));
    }

    #[test]
    fn features_see_what_the_embedding_blurs() {
        let same = features("How do I learn Python?", "How can I learn Python quickly?", 0.9);
        let other_subject = features("How do I learn Python?", "How do I learn Java?", 0.9);
        assert!(same.overlap > other_subject.overlap);
        assert!((other_subject.unmatched - (1.0 - other_subject.overlap)).abs() < 1e-6);
        assert_eq!(features("Is 7 prime?", "Is 9 prime?", 0.9).numbers_differ, 1.0);
        assert_eq!(features("Is 7 prime?", "Is 7 prime?", 1.0).numbers_differ, 0.0);
        assert_eq!(features("Why is the sky blue?", "Why isn't the sky blue?", 0.9).negation_differs, 1.0);
        assert_eq!(features("Why is it red?", "How is it red?", 0.9).question_word_differs, 1.0);
        assert_eq!(stem("learning"), "learn");
        assert_eq!(stem("is"), "is");
    }
}
