/* Zone maps: a configurable tile layer, or (offline) the zones alone on a plain background. The
   controls' words (zoom, Leaflet.draw's toolbar and tooltips) come from #map-strings, in the
   operator's language. */
"use strict";
window.SirenaMaps = (function () {
  var holder = document.getElementById("map-strings");
  var S = holder ? JSON.parse(holder.textContent) : null;
  function merge(into, from) {
    Object.keys(from).forEach(function (k) {
      if (typeof from[k] === "object" && into[k]) { merge(into[k], from[k]); } else { into[k] = from[k]; }
    });
  }
  if (S && window.L && L.drawLocal) { merge(L.drawLocal, { draw: S.draw, edit: S.edit }); }
  var COLOURS = { ack: "#2e7d32", no: "#6d4c41", help: "#b00020", poll: "#6a1b9a", no_answer: "#f9a825",
                  failed: "#212121", pending: "#90a4ae", targeted: "#b00020" };
  function styleFor(selected) {
    return function (feature) {
      var on = selected.indexOf(feature.properties.name) >= 0;
      return { color: on ? "#b00020" : "#455a64", weight: on ? 3 : 1, fillOpacity: on ? 0.35 : 0.1 };
    };
  }
  function open(el, options) {
    options = options || {};
    var map = L.map(el, { zoomSnap: 0.25, attributionControl: !!el.dataset.tiles, zoomControl: !S });
    if (S) { L.control.zoom({ zoomInTitle: S.zoom_in, zoomOutTitle: S.zoom_out }).addTo(map); }
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { maxZoom: 18, attribution: S ? S.base_map : "base map" }).addTo(map);
    }
    map.setView([-33.45, -70.65], 10);
    var selected = (el.dataset.selected || "").split("|").filter(Boolean);
    var state = { map: map, layer: null, selected: selected, features: [] };
    fetch(el.dataset.zones, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (fc) {
      state.features = fc.features || [];
      state.layer = L.geoJSON(fc, {
        style: styleFor(state.selected),
        onEachFeature: function (feature, layer) {
          // A zone's name is anyone's text: a node with textContent, never a string Leaflet would
          // put through innerHTML.
          var tip = document.createElement("span");
          tip.textContent = feature.properties.name + " v" + feature.properties.version;
          layer.bindTooltip(tip);
          if (options.onZoneClick) { layer.on("click", function () { options.onZoneClick(feature.properties.name); }); }
        }
      }).addTo(map);
      if (state.features.length) { map.fitBounds(state.layer.getBounds(), { padding: [10, 10] }); }
    });
    if (el.dataset.points) {
      fetch(el.dataset.points, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (fc) {
        L.geoJSON(fc, {
          pointToLayer: function (feature, latlng) {
            return L.circleMarker(latlng, { radius: 4, weight: 1, className: "dot-" + feature.properties.status,
                                            color: COLOURS[feature.properties.status] || "#333",
                                            fillColor: COLOURS[feature.properties.status] || "#333", fillOpacity: 0.8 });
          }
        }).addTo(map);
      });
    }
    state.restyle = function (names) {
      state.selected = names;
      if (state.layer) { state.layer.setStyle(styleFor(names)); }
    };
    return state;
  }
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("map");
    if (el && !document.getElementById("compose")) { open(el); }
  });
  return { open: open };
})();
