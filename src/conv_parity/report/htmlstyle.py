"""The fixed parts of report.html: its stylesheet and script (inline: the page must render offline,
see :mod:`.htmlreport`), and :func:`esc`, the escaping every piece of report text goes through."""

from __future__ import annotations

import html
from typing import Any


def esc(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--xfail:#9a6700;--unsup:#57606a;--skip:#8c959f;
--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg);max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;
border-bottom:1px solid var(--line)}h3{font-size:15px;margin:20px 0 8px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.runline{color:var(--muted)}.runline b{color:var(--fg);font-weight:600}
.banner{margin:14px 0;padding:10px 14px;border-radius:6px;border:1px solid}
.banner.partial{background:#fff8c5;border-color:#d4a72c}
.banner.conflict{background:#ffebe9;border-color:#ff8182}
.chips{display:flex;flex-wrap:wrap;gap:8px;margin:14px 0}
.chip{border:1px solid var(--line);border-radius:16px;padding:3px 12px;background:var(--soft);
cursor:pointer;font:inherit}.chip b{font-size:15px;margin-right:4px}.chip:hover{border-color:#888}
.chip.v-fail b{color:var(--fail)}.chip.v-pass b{color:var(--pass)}
.chip.v-xfail b{color:var(--xfail)}.chip.v-unsupported b,.chip.v-skip b{color:var(--unsup)}
table{border-collapse:collapse}th,td{border:1px solid var(--line);padding:5px 9px;
text-align:left;vertical-align:top}th{background:var(--soft);font-weight:600}
table.matrix td.cell{cursor:pointer;min-width:120px}table.matrix td.cell:hover{outline:2px solid #0969da}
table.matrix td.bad{background:#fff0ef}table.matrix td.empty{color:var(--skip)}
table.matrix tr.total td{font-weight:600;background:var(--soft)}
.n{display:inline-block;margin-right:8px;white-space:nowrap}.n.pass{color:var(--pass)}
.n.fail{color:var(--fail);font-weight:700}.n.xfail{color:var(--xfail)}
.n.unsupported{color:var(--unsup)}.n.skip{color:var(--skip)}
table.env td{font-size:13px}.no{color:var(--fail)}.yes{color:var(--pass)}
.filters{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:14px;align-items:center;
background:var(--bg);padding:10px 0;border-bottom:1px solid var(--line)}
.filters label{color:var(--muted)}.filters select,.filters input{font:inherit;padding:3px 6px;
margin-left:4px;border:1px solid var(--line);border-radius:6px;background:#fff}
#shown{color:var(--muted);margin-left:auto}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600;white-space:nowrap}
.b-pass{background:var(--pass)}.b-fail{background:var(--fail)}.b-xfail{background:var(--xfail)}
.b-unsupported{background:var(--unsup)}.b-skip{background:var(--skip)}
.card{border:1px solid var(--line);border-left:4px solid var(--fail);border-radius:6px;
margin:12px 0;padding:10px 14px;background:#fff}
.card>header{display:flex;flex-wrap:wrap;gap:10px;align-items:center}
.card>header code{font-size:13px;font-weight:600;word-break:break-all}
.card .where{color:var(--muted)}
.card .body{display:flex;gap:20px;align-items:flex-start;margin-top:8px}
.card .text{flex:1;min-width:0}
.diag{margin:4px 0 8px;padding:6px 10px;background:#ddf4ff;border-radius:6px}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 10px;
margin:6px 0;white-space:pre-wrap;word-break:break-word;max-height:320px;overflow:auto}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
details summary{cursor:pointer;color:var(--muted);margin-top:4px}
figure.heat{margin:0;flex:none;max-width:270px}
figure.heat img{image-rendering:pixelated;image-rendering:crisp-edges;border:1px solid #888;
display:block}
figure.heat figcaption{color:var(--muted);font-size:12px;margin-top:4px}
.legend{display:flex;align-items:center;gap:6px;font-size:12px;margin-top:6px}
.legend .bar{position:relative;display:inline-block;width:150px;height:10px;border:1px solid #888}
.legend .tick{position:absolute;top:-4px;bottom:-4px;width:2px;background:#0969da}
.nf{display:flex;align-items:center;gap:6px;font-size:12px;margin-top:4px}
.nf i{display:inline-block;width:12px;height:12px;background:rgb(123,44,191)}
table.others td{font-size:13px}table.others td.id{word-break:break-all}
.muted{color:var(--muted)}.foot{margin-top:30px;color:var(--muted);font-size:12px}
[hidden]{display:none!important}
"""

JS = """
(function(){
  var $ = function(id){return document.getElementById(id);};
  var fb=$('f-backend'), fl=$('f-layer'), fv=$('f-verdict'), fq=$('f-search');
  var items=[].slice.call(document.querySelectorAll('[data-verdict]'));
  function apply(){
    var b=fb.value, l=fl.value, v=fv.value, q=fq.value.trim().toLowerCase(), shown=0, cards=0, rows=0;
    items.forEach(function(el){
      var d=el.dataset;
      var ok=(!b||d.backend===b)&&(!l||d.layer===l)&&
        (!v||(v==='@fail'?d.fail==='1':d.verdict===v))&&(!q||d.id.indexOf(q)>=0);
      el.hidden=!ok;
      if(ok){shown++; if(el.tagName==='ARTICLE'){cards++;}else{rows++;}}
    });
    $('shown').textContent=shown+' of '+items.length+' results shown';
    $('failures-empty').hidden=cards>0; $('others-empty').hidden=rows>0;
  }
  function toHash(){
    var p=[]; [['backend',fb],['layer',fl],['verdict',fv],['q',fq]].forEach(function(kv){
      if(kv[1].value){p.push(kv[0]+'='+encodeURIComponent(kv[1].value));}});
    if(history.replaceState){history.replaceState(null,'',p.length?'#'+p.join('&'):location.pathname);}
  }
  function fromHash(){
    location.hash.replace(/^#/,'').split('&').forEach(function(part){
      var i=part.indexOf('='); if(i<0){return;}
      var k=part.slice(0,i), v=decodeURIComponent(part.slice(i+1));
      var el={backend:fb,layer:fl,verdict:fv,q:fq}[k];
      if(el && (el.tagName!=='SELECT' || [].some.call(el.options,function(o){return o.value===v;}))){el.value=v;}
    });
  }
  function changed(){apply(); toHash();}
  [fb,fl,fv].forEach(function(s){s.addEventListener('change',changed);});
  fq.addEventListener('input',changed);
  [].slice.call(document.querySelectorAll('[data-filter-backend],[data-filter-verdict]'))
    .forEach(function(el){
      el.addEventListener('click',function(){
        fb.value=el.dataset.filterBackend||''; fl.value=el.dataset.filterLayer||'';
        fv.value=el.dataset.filterVerdict||''; fq.value='';
        changed(); $('results').scrollIntoView({behavior:'smooth'});
      });
    });
  fromHash();
  apply();
})();
"""
