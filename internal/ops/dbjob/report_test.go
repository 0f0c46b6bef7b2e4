package dbjob

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/a0backup/a0/internal/restore"
)

// fill sets every field of v (a pointer) to a non-zero value, so that no
// omitempty field is left out of its JSON.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fill(v.Index(i))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	}
}

// The restore's report reaches restore-status as api.RestoreReport: every
// field restore.Report writes must come through, with the same JSON.
func TestReportJSON(t *testing.T) {
	var r restore.Report
	fill(reflect.ValueOf(&r).Elem())
	want, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(report(&r))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("api.RestoreReport differs from restore.Report:\n got %s\nwant %s", got, want)
	}
	if report(nil) != nil {
		t.Fatal("no report became a report")
	}
}

// The restore's counters reach restore-status as api.RestoreCounters.
func TestCountersJSON(t *testing.T) {
	var s restore.Snapshot
	fill(reflect.ValueOf(&s).Elem())
	want, _ := json.Marshal(s)
	got, _ := json.Marshal(counters(s))
	if string(got) != string(want) {
		t.Fatalf("api.RestoreCounters differs from restore.Snapshot:\n got %s\nwant %s", got, want)
	}
}
