// promql-check reads PromQL expressions, one per line on stdin, and prints one JSON line per
// expression: the metric names it selects, or the parse error. Exit status 1 if any failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
	Error   string   `json:"error,omitempty"`
}

func check(p parser.Parser, expr string) result {
	res := result{Expr: expr, Metrics: []string{}}
	ast, err := p.ParseExpr(expr)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	seen := map[string]bool{}
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && vs.Name != "" && !seen[vs.Name] {
			seen[vs.Name] = true
			res.Metrics = append(res.Metrics, vs.Name)
		}
		return nil
	})
	sort.Strings(res.Metrics)
	return res
}

func main() {
	p := parser.NewParser(parser.Options{})
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	failed := false
	for scanner.Scan() {
		if scanner.Text() == "" {
			continue
		}
		res := check(p, scanner.Text())
		failed = failed || res.Error != ""
		if err := out.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if failed {
		os.Exit(1)
	}
}
