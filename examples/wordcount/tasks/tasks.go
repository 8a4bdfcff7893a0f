// Package tasks declares the task kinds of the wordcount example, once, for
// the worker that serves them (examples/wordcount/worker) and the producer
// that submits them (examples/wordcount/producer). A program of your own
// keeps its kinds in a small package like this one.
//
// The kinds are strings on the wire: renaming a Go type or field never
// breaks queued work, renaming a kind or a msgpack tag does. The msgpack
// tags name the fields in the messages; the json tags name them in the
// producer's output and in `submit run wordcount '{"name": ..., "body": ...}'`.
package tasks

import "github.com/jetpool/jetpool/task"

var (
	// WordCount counts the lines, words and bytes of one text, as wc does:
	// lines are newlines, words are runs of non-space characters.
	WordCount = task.New[Text, Counts]("wordcount")
	// TopWords returns the N most frequent words of a text, most frequent
	// first and ties in alphabetical order. Words are compared in lower case
	// without the punctuation around them; the worker's stop words
	// (--stopwords) are left out.
	TopWords = task.New[TopArgs, []WordFreq]("top-words")
)

// Text is a named text.
type Text struct {
	Name string `msgpack:"name" json:"name"`
	Body string `msgpack:"body" json:"body"`
}

// Counts are a text's counts.
type Counts struct {
	Name  string `msgpack:"name" json:"name"`
	Lines int    `msgpack:"lines" json:"lines"`
	Words int    `msgpack:"words" json:"words"`
	Bytes int    `msgpack:"bytes" json:"bytes"`
}

// TopArgs asks for the N most frequent words of Body.
type TopArgs struct {
	Body string `msgpack:"body" json:"body"`
	N    int    `msgpack:"n" json:"n"`
}

// WordFreq is a word and how often it occurs.
type WordFreq struct {
	Word  string `msgpack:"word" json:"word"`
	Count int    `msgpack:"count" json:"count"`
}
