// Draws every chart on the page from its embedded JSON, makes tables sortable, and gives long tables
// a CSV download. No network: everything is built from the page itself.
document.querySelectorAll("script[data-chart]").forEach(function (el) {
  var fig = JSON.parse(el.textContent);
  Plotly.newPlot(el.dataset.chart, fig.data, fig.layout, {displaylogo: false, responsive: true});
});

// "6,881" and "12.5%" sort as numbers; text sorts as text.
function cellValue(cell) {
  var text = cell.textContent.trim(), number = parseFloat(text.replace(/,/g, ""));
  return isNaN(number) ? text : number;
}

document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.dataset.order !== "asc"; th.dataset.order = asc ? "asc" : "desc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a.cells[idx]), y = cellValue(b.cells[idx]);
      var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});

var CSV_FROM_ROWS = 15;  // shorter tables are read on the page
function csvField(text) {
  return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}
document.querySelectorAll("table").forEach(function (table, n) {
  if (!table.tBodies[0] || table.tBodies[0].rows.length <= CSV_FROM_ROWS) return;
  var lines = Array.prototype.map.call(table.rows, function (row) {
    return Array.prototype.map.call(row.cells, function (c) { return csvField(c.textContent.trim()); }).join(",");
  });
  var link = document.createElement("a");
  link.className = "csv";
  link.textContent = "Download this table as CSV";
  link.download = (document.title.replace(/[^\w-]+/g, "_") || "table") + "_" + (n + 1) + ".csv";
  link.href = URL.createObjectURL(new Blob([lines.join("\n")], {type: "text/csv"}));
  table.insertAdjacentElement("afterend", link);
});
