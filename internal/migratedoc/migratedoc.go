// Package migratedoc reads the tables of docs/migrate-from-contrib.md, so
// that tests hold the guide's claims against the receiver's code
// (receiver/k8sevents) and against contrib's receivers, k8s_events and
// k8sobjects (e2e). The document is the source: a table is the Markdown
// table after a line `<!-- table: NAME -->`, and names are the `code spans`
// of a cell.
package migratedoc

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// Path is the guide, relative to the module root.
const Path = "docs/migrate-from-contrib.md"

// Where an attribute or field is: on the resource, on the log record (an
// attribute), in the record's body (a field of the map k8sobjects sends), or
// a field of the record itself (timestamp, severity).
const (
	OnResource = "resource"
	OnRecord   = "record"
	OnBody     = "body"
	OnField    = "field"
)

// Attribute is one row of the attributes table.
type Attribute struct {
	// Contrib is contrib's attribute, "" when contrib has none.
	Contrib string
	// ContribOn is where contrib puts it: OnResource or OnRecord.
	ContribOn string
	// Ours are the attributes of this receiver the row describes.
	Ours []string
	// OursOn is where ours puts them: OnResource or OnRecord.
	OursOn string
}

// Key is one row of the configuration table.
type Key struct {
	// Contrib is contrib's key, "" when contrib has none.
	Contrib string
	// Ours are this receiver's keys the row describes.
	Ours []string
}

// Field is one row of the k8sobjects table: what a k8sobjects record
// carries (body fields such as `object.reason`, attributes) and what ours
// carries instead.
type Field struct {
	// Objects are k8sobjects' names, ObjectsOn where they are (OnBody,
	// OnRecord, OnResource).
	Objects   []string
	ObjectsOn string
	// Ours are this receiver's, "" when it has none; OursOn where they are
	// (OnResource, OnRecord, OnBody, OnField).
	Ours   []string
	OursOn string
}

// Query is a LogQL query for contrib's lines and the one for ours that
// finds the same Events.
type Query struct {
	Title         string
	Before, After string
}

// Doc is what the guide says, read from its tables and LogQL pairs.
type Doc struct {
	// From k8s_events: configuration keys, attributes and LogQL pairs.
	Keys       []Key
	Attributes []Attribute
	Queries    []Query
	// From k8sobjects (the Helm chart's kubernetesEvents preset): keys
	// (Key.Contrib may hold several, such as `objects[].mode`), fields and
	// LogQL pairs.
	ObjectsKeys    []Key
	ObjectsFields  []Field
	ObjectsQueries []Query
	// Text is the whole document.
	Text string
}

// The sections of LogQL pairs.
const (
	queriesSection        = "LogQL before and after"
	objectsQueriesSection = "LogQL before and after, from `k8sobjects`"
)

// Read reads the guide at the module root.
func Read() (*Doc, error) {
	root, err := testbin.ModuleRoot()
	if err != nil {
		return nil, err
	}
	return ReadFile(filepath.Join(root, Path))
}

// ReadFile reads the guide at path.
func ReadFile(path string) (*Doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the migration guide: %w", err)
	}
	return Parse(string(data))
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// names returns the code spans of a cell.
func names(cell string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// one returns the single code span of a cell, "" for a cell without one
// ("—"), and an error for several.
func one(cell string) (string, error) {
	n := names(cell)
	switch len(n) {
	case 0:
		return "", nil
	case 1:
		return n[0], nil
	default:
		return "", fmt.Errorf("cell %q names %d, want one", cell, len(n))
	}
}

// place reads a cell saying where an attribute is: one of allowed, or
// empty when not needed.
func place(cell string, needed bool, allowed ...string) (string, error) {
	p := strings.TrimSpace(cell)
	if p == "" && !needed {
		return "", nil
	}
	if len(allowed) == 0 {
		allowed = []string{OnResource, OnRecord}
	}
	for _, a := range allowed {
		if p == a {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: want one of %s", cell, strings.Join(allowed, ", "))
}

// Parse reads the guide's text.
func Parse(text string) (*Doc, error) {
	d := &Doc{Text: text}
	keys, err := table(text, "keys", 3)
	if err != nil {
		return nil, err
	}
	for _, r := range keys {
		contrib, oneErr := one(r[0])
		if oneErr != nil {
			return nil, fmt.Errorf("keys: %w", oneErr)
		}
		k := Key{Contrib: contrib, Ours: names(r[1])}
		if k.Contrib == "" && len(k.Ours) == 0 {
			return nil, fmt.Errorf("keys: row %q names no key", r)
		}
		d.Keys = append(d.Keys, k)
	}
	attrs, err := table(text, "attributes", 5)
	if err != nil {
		return nil, err
	}
	for _, r := range attrs {
		var a Attribute
		if a.Contrib, err = one(r[0]); err != nil {
			return nil, fmt.Errorf("attributes: %w", err)
		}
		if a.ContribOn, err = place(r[1], a.Contrib != ""); err != nil {
			return nil, fmt.Errorf("attributes: contrib %s: %w", a.Contrib, err)
		}
		a.Ours = names(r[2])
		if a.OursOn, err = place(r[3], len(a.Ours) > 0); err != nil {
			return nil, fmt.Errorf("attributes: %v: %w", a.Ours, err)
		}
		d.Attributes = append(d.Attributes, a)
	}
	if d.Queries, err = queries(text, queriesSection); err != nil {
		return nil, err
	}
	if err := d.parseObjects(text); err != nil {
		return nil, err
	}
	return d, nil
}

// parseObjects reads the part for users of k8sobjects.
func (d *Doc) parseObjects(text string) error {
	keys, err := table(text, "objects-keys", 3)
	if err != nil {
		return err
	}
	for _, r := range keys {
		k := Key{Contrib: strings.Join(names(r[0]), ", "), Ours: names(r[1])}
		if k.Contrib == "" && len(k.Ours) == 0 {
			return fmt.Errorf("objects-keys: row %q names no key", r)
		}
		d.ObjectsKeys = append(d.ObjectsKeys, k)
	}
	fields, err := table(text, "objects-fields", 5)
	if err != nil {
		return err
	}
	for _, r := range fields {
		f := Field{Objects: names(r[0]), Ours: names(r[2])}
		if len(f.Objects) == 0 {
			return fmt.Errorf("objects-fields: row %q names no field of k8sobjects", r)
		}
		if f.ObjectsOn, err = place(r[1], true, OnBody, OnRecord, OnResource); err != nil {
			return fmt.Errorf("objects-fields: %v: %w", f.Objects, err)
		}
		if f.OursOn, err = place(r[3], len(f.Ours) > 0, OnResource, OnRecord, OnBody, OnField); err != nil {
			return fmt.Errorf("objects-fields: %v: %w", f.Ours, err)
		}
		d.ObjectsFields = append(d.ObjectsFields, f)
	}
	d.ObjectsQueries, err = queries(text, objectsQueriesSection)
	return err
}

// table returns the cells of the rows (after the header and the
// separator) of the table marked name, which must have cols columns.
func table(text, name string, cols int) ([][]string, error) {
	marker := "<!-- table: " + name + " -->"
	_, rest, ok := strings.Cut(text, marker)
	if !ok {
		return nil, fmt.Errorf("no %s in the migration guide", marker)
	}
	var rows [][]string
	lines := strings.Split(strings.TrimLeft(rest, "\n"), "\n")
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i < 2 {
			continue // header and separator
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != cols {
			return nil, fmt.Errorf("table %s: row %q has %d cells, want %d", name, line, len(cells), cols)
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("table %s: no rows after %s", name, marker)
	}
	return rows, nil
}

// queries returns the pairs of ```logql blocks under each ### heading of
// the section "## <name>".
func queries(text, name string) ([]Query, error) {
	_, section, ok := strings.Cut(text, "\n## "+name+"\n")
	if !ok {
		return nil, fmt.Errorf("no section %q in the migration guide", name)
	}
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var (
		out    []Query
		title  string
		blocks []string
		block  *strings.Builder
	)
	flush := func() error {
		if title == "" {
			return nil
		}
		switch len(blocks) {
		case 0:
			return nil // prose only
		case 2:
			out = append(out, Query{Title: title, Before: blocks[0], After: blocks[1]})
			return nil
		default:
			return fmt.Errorf("%q: %d logql blocks, want a pair (before, after)", title, len(blocks))
		}
	}
	for _, line := range strings.Split(section, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case block == nil && strings.HasPrefix(line, "### "):
			if err := flush(); err != nil {
				return nil, err
			}
			title, blocks = strings.TrimPrefix(line, "### "), nil
		case block == nil && trimmed == "```logql":
			block = &strings.Builder{}
		case block != nil && trimmed == "```":
			blocks = append(blocks, strings.TrimSpace(block.String()))
			block = nil
		case block != nil:
			block.WriteString(line + "\n")
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no pair of logql blocks in %q", name)
	}
	return out, nil
}
