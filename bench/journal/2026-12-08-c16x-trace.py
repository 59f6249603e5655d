# commitprobe -trace analysis (journal 2026-12-08-c16x.md). Usage:
#   go tool trace -d=parsed trace.out > parsed.txt; python3 2026-12-08-c16x-trace.py parsed.txt
# Part 1: the seglog committer (fdatasync, gap to the next pwrite, overlaps with other
# syscalls, CPU by goroutine kind in gap and sync windows). Part 2: blocking reasons.
import sys, re, collections
hdr = re.compile(r'^M=(-?\d+) P=(-?\d+) G=(-?\d+) (\w+) Time=(\d+)(.*)$')
evs = []
cur = None
mode = None
for line in open(sys.argv[1]):
    m = hdr.match(line)
    if m:
        cur = dict(M=int(m[1]), P=int(m[2]), G=int(m[3]), kind=m[4], t=int(m[5]), rest=m[6], ts=[], st=[])
        evs.append(cur); mode=None; continue
    if line.startswith('TransitionStack='): mode='ts'; continue
    if line.startswith('Stack='): mode='st'; continue
    if cur is not None and mode and line.startswith('\t') and not line.startswith('\t\t'):
        cur[mode].append(line.strip().split(' @')[0])
st = [e for e in evs if e['kind']=='StateTransition']
tr = re.compile(r'(GoID|ProcID)=(\d+) (\w+)->(\w+)')
for e in st:
    m = tr.search(e['rest'])
    e['who'], e['id'], e['frm'], e['to'] = m[1], int(m[2]), m[3], m[4]
gs = [e for e in st if e['who']=='GoID']
# committer goroutine
cc = collections.Counter(e['id'] for e in gs if e['to']=='Syscall' and any('Fdatasync' in f for f in e['ts']) and any('commitGroup' in f for f in e['ts']))
comm = cc.most_common(1)[0][0]
print('committer', comm)
ce = [e for e in gs if e['id']==comm]
# per fdatasync: enter, syscall exit, running again
syncs=[]
i=0
while i < len(ce):
    e=ce[i]
    if e['to']=='Syscall' and any('Fdatasync' in f for f in e['ts']):
        t0=e['t']; j=i+1
        texit=None; trun=None; retaken=False
        while j<len(ce):
            f=ce[j]
            if f['frm']=='Syscall':
                texit=f['t']
                if f['to']=='Running': trun=f['t']
                else: retaken=True
            elif f['frm']=='Runnable' and f['to']=='Running' and texit:
                trun=f['t']
            if trun: break
            j+=1
        if texit and trun: syncs.append((t0,texit,trun,retaken))
        i=j
    i+=1
def q(xs,p): xs=sorted(xs); return xs[int(p*(len(xs)-1))] if xs else 0
sd=[ (b-a)/1000 for a,b,c,r in syncs]; wd=[(c-b)/1000 for a,b,c,r in syncs]
print('syncs',len(syncs),'retaken',sum(1 for s in syncs if s[3]))
print('syscall us p10/50/90/mean', q(sd,.1),q(sd,.5),q(sd,.9), sum(sd)/len(sd))
print('exit->running us p50/90/mean', q(wd,.5),q(wd,.9), sum(wd)/len(wd))
# period: from sync enter to next sync enter
per=[(syncs[k+1][0]-syncs[k][0])/1000 for k in range(len(syncs)-1)]
print('period us p50/mean', q(per,.5), sum(per)/len(per))
# from running-after-sync to next pwrite start (Running->Syscall with pwrite)
pw=[e['t'] for e in ce if e['to']=='Syscall' and any('pwrite' in f for f in e['ts'])]
import bisect
gap=[]
for a,b,c,r in syncs:
    k=bisect.bisect_right(pw,c)
    if k<len(pw): gap.append((pw[k]-c)/1000)
print('running-after-sync -> next pwrite us p50/90/mean', q(gap,.5), q(gap,.9), sum(gap)/len(gap))
# what the committer does in that gap: transitions of committer between c and next pwrite
reasons=collections.Counter(); blocked=collections.defaultdict(float)
for a,b,c,r in syncs:
    k=bisect.bisect_right(pw,c)
    if k>=len(pw): continue
    end=pw[k]
    evs2=[e for e in ce if c<=e['t']<=end]
    for x,y in zip(evs2,evs2[1:]):
        if x['to']!='Running':
            key=x['frm']+'->'+x['to']+' '+ ('/'.join(x['ts'][:3]) if x['ts'] else '')
            blocked[key]+= (y['t']-x['t'])/1000
            reasons[key]+=1
n=len(syncs)
for k,v in sorted(blocked.items(), key=lambda kv:-kv[1])[:12]:
    print('  %.1f us/group  n=%d  %s'%(v/n, reasons[k], k))
# other goroutines' syscalls overlapping a sync
sc=[]  # (start,end,goid,top)
open_={}
for e in gs:
    if e['to']=='Syscall':
        open_[e['id']]=(e['t'], '/'.join(e['ts'][:4]))
    elif e['frm']=='Syscall' and e['id'] in open_:
        t0,top=open_.pop(e['id'])
        sc.append((t0,e['t'],e['id'],top))
ov=collections.Counter(); ovd=collections.defaultdict(list); nov=[]
for a,b,c,r in syncs:
    tops=set()
    for s0,s1,g,top in sc:
        if g!=comm and s0<b and s1>a:
            tops.add(top.split('/')[0]+'|'+ (top.split('/')[3] if len(top.split('/'))>3 else ''))
    if not tops: nov.append((b-a)/1000)
    for t in tops: ov[t]+=1; ovd[t].append((b-a)/1000)
print('syncs with no overlapping syscall: n=%d p50=%.0f mean=%.0f'%(len(nov), q(nov,.5), sum(nov)/max(1,len(nov))))
for t,n in ov.most_common(10):
    print('  overlap n=%d sync p50=%.0f mean=%.0f  %s'%(n,q(ovd[t],.5),sum(ovd[t])/n,t))
pwd_=[(s1-s0)/1000 for s0,s1,g,top in sc if g==comm and 'pwrite' in top]
print('committer pwrite n=%d p50=%.1f mean=%.1f'%(len(pwd_), q(pwd_,.5), sum(pwd_)/len(pwd_)))
# committer running time in the gap (excluding syscalls and runnable)
run=[]
for a,b,c,r in syncs:
    k=bisect.bisect_right(pw,c)
    if k>=len(pw): continue
    end=pw[k]
    evs2=[e for e in ce if c<=e['t']<=end]
    tot=0
    last=c; state='Running'
    for x in evs2:
        if state=='Running': tot+=x['t']-last
        state=x['to']; last=x['t']
    if state=='Running': tot+=end-last
    run.append(tot/1000)
print('committer running in gap p50=%.1f mean=%.1f'%(q(run,.5), sum(run)/len(run)))
# preparer: goroutines other than committer doing Fdatasync
pf=[(s0,s1,g) for s0,s1,g,top in sc if g!=comm and 'Fdatasync' in top]
print('other fdatasyncs', len(pf), 'durations us', [round((b-a)/1000) for a,b,g in pf][:40])
# pwrite bursts by preparer
pp=sorted([(s0,s1) for s0,s1,g,top in sc if g!=comm and 'pwrite' in top])
bursts=[]
for s0,s1 in pp:
    if bursts and s0-bursts[-1][1] < 50000: bursts[-1][1]=s1; bursts[-1][2]+=1
    else: bursts.append([s0,s1,1])
print('pwrite bursts', len(bursts), [(round((b-a)/1000), n) for a,b,n in bursts][:40])
tot=(gs[-1]['t']-gs[0]['t'])/1e6
print('trace ms', tot)
# classify goroutines by their most common stack frame in transitions
gname={}
cnt=collections.defaultdict(collections.Counter)
for e in gs:
    stk = e['ts'] if e['ts'] else []
    if any('AppendIntentionHeld' in f for f in stk): cnt[e['id']]['client']+=1; continue
    if any('AppendLazy' in f for f in stk): cnt[e['id']]['flusher-lazy']+=1; continue
    for f in stk:
        if 'cruzdb' in f or 'main.' in f:
            cnt[e['id']][f.split('/')[-1]]+=1; break
def name(g):
    if g==comm: return 'committer'
    c=cnt.get(g)
    if not c: return 'other'
    top=c.most_common(1)[0][0]
    if top in ('client','flusher-lazy'): return top
    if 'take' in top or 'flusher' in top: return 'flusher'
    return top
# running intervals per goroutine
runs=[]; start={}
for e in gs:
    if e['to']=='Running': start[e['id']]=e['t']
    elif e['frm']=='Running' and e['id'] in start:
        runs.append((start.pop(e['id']), e['t'], e['id']))
# windows: gap = [sync end, next pwrite start]; sync = [sync start, sync end]
gapw=[]; syncw=[]
for a,b,c,r in syncs:
    k=bisect.bisect_right(pw,c)
    if k<len(pw): gapw.append((b,pw[k]))
    syncw.append((a,b))
def cpu_in(wins):
    acc=collections.Counter()
    wins=sorted(wins); starts=[w[0] for w in wins]
    for s0,s1,g in runs:
        k=bisect.bisect_right(starts,s1)-1
        while k>=0 and wins[k][1]>s0:
            o=min(s1,wins[k][1])-max(s0,wins[k][0])
            if o>0: acc[name(g)]+=o
            k-=1
    return acc
for label,w in (('gap',gapw),('sync',syncw)):
    acc=cpu_in(w); tot=sum(b-a for a,b in w)
    print(label,'window total ms %.1f'%(tot/1e6), 'cpu by kind (us per window):', ', '.join('%s=%.1f'%(k,v/len(w)/1000) for k,v in acc.most_common(8)))

# ---- part 2: where goroutines block, and how long they then wait runnable
# blocking reasons for all goroutines: Running->Waiting with stack; duration until Runnable, then until Running
blk=collections.defaultdict(lambda:[0,0.0,0.0])
state={}
for e in gs:
    g=e['id']
    if e['frm']=='Running' and e['to'] in ('Waiting','Runnable'):
        key=e['to']+' '+'/'.join(f.split('/')[-1] for f in e['ts'][:4])
        state[g]=[key,e['t'],None]
    elif e['frm']=='Waiting' and e['to']=='Runnable' and g in state:
        state[g][2]=e['t']
    elif e['frm']=='Runnable' and e['to']=='Running' and g in state:
        key,t0,t1=state.pop(g)
        b=blk[key]; b[0]+=1
        if t1: b[1]+=(t1-t0)/1000; b[2]+=(e['t']-t1)/1000
        else: b[2]+=(e['t']-t0)/1000
tot=(gs[-1]['t']-gs[0]['t'])/1e3
for k,v in sorted(blk.items(), key=lambda kv:-(kv[1][1]+kv[1][2]))[:25]:
    print('n=%6d wait=%7.1fms runnable=%7.1fms  %s'%(v[0],v[1]/1000,v[2]/1000,k[:200]))
