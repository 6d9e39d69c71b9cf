// cnnprof report: tables (sortable, filterable) and charts (Vega-Lite through vegaEmbed), from the
// JSON in #cnnprof-data. No network: everything the page needs is in the page.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("cnnprof-data").textContent);

  function scaled(v, unit) {
    var a = Math.abs(v), steps = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < steps.length; i++) {
      if (a >= steps[i][0]) return (v / steps[i][0]).toFixed(2) + steps[i][1] + unit;
    }
    return String(Math.round(v)) + unit;
  }

  function show(v, kind) {
    if (v === null || v === undefined || v === "") return "-";
    switch (kind) {
      case "ms": return v < 1 ? v.toPrecision(3) : v.toFixed(2);
      case "count": return scaled(v, "");
      case "notes": // "noisy: IQR is 12% of the median; passes: ..." -> "noisy, passes" (the whole text on hover)
        return String(v).split("; ").map(function (n) { return n.split(":")[0]; }).join(", ");
      case "int": return Math.round(v).toLocaleString("en-US");
      case "time": return String(v).replace("T", " ").replace(/(\.\d+)?Z$/, "");
      case "float": return typeof v === "number" ? (Math.abs(v) >= 1e4 ? v.toExponential(3) : String(+v.toPrecision(4))) : String(v);
      default: return String(v);
    }
  }

  function compare(a, b) {
    var na = a === null || a === undefined || a === "", nb = b === null || b === undefined || b === "";
    if (na || nb) return na === nb ? 0 : (na ? 1 : -1); // empty cells last
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), "en", {numeric: true});
  }

  var TEXT_KINDS = ["text", "prose", "verdict", "notes", "time"];
  function isText(kind) { return TEXT_KINDS.indexOf(kind) >= 0; }
  function isEmpty(v) { return v === null || v === undefined || v === ""; }

  // Which columns start hidden: one with nothing in it, or (a compact table with two rows or more)
  // one whose value is the same on every row, said once above the table instead. Never the first
  // column (it says which row is which) nor a verdict. The column picker shows any of them again.
  function hiddenAtFirst(columns, rows, compact) {
    var hidden = [], same = [], empty = [];
    columns.forEach(function (c, i) {
      if (i === 0 || c[2] === "verdict") { hidden.push(false); return; }
      var values = rows.map(function (r) { return isEmpty(r[i]) ? "" : JSON.stringify(r[i]); });
      var allEmpty = values.every(function (v) { return v === ""; });
      var allSame = compact && rows.length > 1 && values.every(function (v) { return v === values[0]; });
      if (allEmpty) empty.push(c[1]);
      else if (allSame) same.push(c[1] + " " + show(rows[0][i], c[2]));
      hidden.push(allEmpty || allSame);
    });
    return {hidden: hidden, same: same, empty: empty};
  }

  function renderTable(table, spec) {
    var columns = spec.columns, rows = spec.rows.slice(), sortCol = -1, ascending = true;
    var first = hiddenAtFirst(columns, rows, table.hasAttribute("data-compact")), hidden = first.hidden;
    var thead = document.createElement("thead"), tbody = document.createElement("tbody");

    function header() {
      var tr = document.createElement("tr");
      columns.forEach(function (c, i) {
        if (hidden[i]) return;
        var th = document.createElement("th");
        th.textContent = c[1];
        th.setAttribute("scope", "col");
        th.setAttribute("aria-sort", sortCol === i ? (ascending ? "ascending" : "descending") : "none");
        th.className = isText(c[2]) ? "t" : "n";
        th.addEventListener("click", function () {
          ascending = sortCol === i ? !ascending : true;
          sortCol = i;
          rows.sort(function (x, y) { var d = compare(x[i], y[i]); return ascending ? d : -d; });
          header();
          body();
        });
        tr.appendChild(th);
      });
      thead.textContent = "";
      thead.appendChild(tr);
    }
    function body() {
      var frag = document.createDocumentFragment();
      rows.forEach(function (r) {
        var row = document.createElement("tr");
        columns.forEach(function (c, i) {
          if (c[0] === "error" && r[i]) row.className = "has-error";
          if (hidden[i]) return;
          var td = document.createElement("td");
          td.textContent = show(r[i], c[2]);  // text, never markup: the data holds names users chose
          if ((c[2] === "notes" || c[2] === "time") && r[i]) td.title = r[i];
          td.className = c[2] === "prose" ? "prose" : (isText(c[2]) ? "t" : "n");
          if (c[2] === "verdict" && r[i]) td.className += " verdict v-" + String(r[i]).replace(/[^a-z]+/g, "-");
          row.appendChild(td);
        });
        frag.appendChild(row);
      });
      tbody.textContent = "";
      tbody.appendChild(frag);
      var filter = document.querySelector('input.filter[data-for="' + table.id + '"]');
      if (filter && tbody.parentNode === table) filterRows(filter);  // a re-drawn body keeps the filter
    }
    header();
    body();
    table.textContent = "";
    table.appendChild(thead);
    table.appendChild(tbody);
    if (columns.length > 2) tools(table, columns, first, function (i, on) { hidden[i] = !on; header(); body(); });
  }

  // Above a table: what every row shares (the columns left out for it) and a picker of the columns.
  function tools(table, columns, first, toggle) {
    var box = document.createElement("div"), notes = [];
    box.className = "table-tools";
    if (first.same.length) notes.push("Same on every row: " + first.same.join(", ") + ".");
    if (first.empty.length) notes.push("Empty: " + first.empty.join(", ") + ".");
    var picker = document.createElement("details"), summary = document.createElement("summary");
    picker.className = "columns";
    summary.textContent = "columns";
    picker.appendChild(summary);
    columns.forEach(function (c, i) {
      if (i === 0) return;
      var label = document.createElement("label"), box2 = document.createElement("input");
      box2.type = "checkbox";
      box2.checked = !first.hidden[i];
      box2.setAttribute("data-column", c[0]);
      box2.addEventListener("change", function () { toggle(i, box2.checked); });
      label.appendChild(box2);
      label.appendChild(document.createTextNode(" " + c[1]));
      picker.appendChild(label);
    });
    box.appendChild(picker);
    if (notes.length) {
      var p = document.createElement("span");
      p.className = "shared";
      p.textContent = notes.join(" ");
      box.appendChild(p);
    }
    var wrap = table.parentNode, before = wrap.previousElementSibling;
    if (before && before.className === "table-tools") before.parentNode.removeChild(before);  // drawn again
    wrap.parentNode.insertBefore(box, wrap);
  }

  function filterRows(input) {
    var table = document.getElementById(input.getAttribute("data-for"));
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  }

  function expand(columnar) {
    return columnar.rows.map(function (r) {
      var o = {};
      columnar.cols.forEach(function (c, i) { o[c] = r[i]; });
      return o;
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table[data-table]"), function (table) {
    renderTable(table, DATA.tables[table.getAttribute("data-table")]);
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (input) {
    input.addEventListener("input", function () { filterRows(input); });
  });

  // The comparison: the selector draws the two runs or revisions it names (text only, as everywhere).
  var pick = document.getElementById("compare-pick");
  if (pick) {
    pick.addEventListener("change", function () {
      var c = DATA.comparisons[+pick.value];
      document.getElementById("compare-a").textContent = c.a;
      document.getElementById("compare-b").textContent = c.b;
      document.getElementById("compare-note").textContent = c.note;
      document.getElementById("compare-empty").hidden = c.table.rows.length > 0;
      renderTable(document.getElementById("table-compare"), c.table);
    });
  }

  var expanded = {};
  function dataset(name) {
    if (!expanded[name]) expanded[name] = expand(DATA.datasets[name]);
    return expanded[name];
  }
  var pending = DATA.charts.map(function (chart) {
    var el = document.getElementById(chart.target);
    var spec = chart.spec;
    spec.datasets = {};
    chart.datasets.forEach(function (name) { spec.datasets[name] = dataset(name); });
    return window.vegaEmbed(el, spec, {renderer: "svg", actions: false})
      .then(function () { el.setAttribute("data-rendered", "true"); })
      .catch(function (err) {
        el.textContent = "This chart could not be drawn: " + err;
        console.error("cnnprof report: chart " + chart.target + ": " + err);
      });
  });
  Promise.all(pending).then(function () { document.body.setAttribute("data-charts-rendered", String(pending.length)); });
})();
