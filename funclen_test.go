package kafkaconsensus_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFunctionLines is the longest a function of the module may be, from
// its func keyword to its closing brace.
const maxFunctionLines = 80

// longFunctionsAllowed lists, as "path name" (see funcName), the functions
// over maxFunctionLines that TestFunctionLength tolerates for now: these
// are to be split into helpers, and their entries removed then.
var longFunctionsAllowed = map[string]bool{}

// TestFunctionLength checks that no function of the module's non-test,
// non-generated Go files is longer than maxFunctionLines, but those of
// longFunctionsAllowed, and that each of those still is (an entry that no
// longer applies must be removed). Test files, generated files (*.pb.go
// and those marked "Code generated ... DO NOT EDIT.") and testdata are
// not checked.
func TestFunctionLength(t *testing.T) {
	fset := token.NewFileSet()
	stillLong := make(map[string]bool)
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasSuffix(name, ".pb.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		files++
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start := fset.Position(fd.Pos())
			n := fset.Position(fd.End()).Line - start.Line + 1
			if n <= maxFunctionLines {
				continue
			}
			key := filepath.ToSlash(path) + " " + funcName(fd)
			if longFunctionsAllowed[key] {
				stillLong[key] = true
				continue
			}
			t.Errorf("%s:%d: %s is %d lines long, more than %d: split it into helpers", filepath.ToSlash(path), start.Line, funcName(fd), n, maxFunctionLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no Go file checked")
	}
	for key := range longFunctionsAllowed {
		if !stillLong[key] {
			t.Errorf("longFunctionsAllowed lists %q, which is not a function over %d lines: remove the entry", key, maxFunctionLines)
		}
	}
}

// funcName returns fd's name, as (*T).Name or T.Name for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	recv := fd.Recv.List[0].Type
	star := false
	if s, ok := recv.(*ast.StarExpr); ok {
		recv, star = s.X, true
	}
	switch r := recv.(type) {
	case *ast.IndexExpr: // generic receiver T[P]
		recv = r.X
	case *ast.IndexListExpr: // T[P, Q]
		recv = r.X
	}
	name := "?"
	if id, ok := recv.(*ast.Ident); ok {
		name = id.Name
	}
	if star {
		return "(*" + name + ")." + fd.Name.Name
	}
	return name + "." + fd.Name.Name
}
