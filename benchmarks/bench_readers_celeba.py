import time, sys, numpy as np
from pathlib import Path
sys.path.insert(0, ".")
from facemac.attributes import CELEBA_ATTRIBUTES
from facemac.data.celeba import read_celeba
base = Path("/tmp/bench_celeba"); (base / "img_align_celeba").mkdir(parents=True, exist_ok=True)
n = 202599
rng = np.random.default_rng(0)
files = [f"{i+1:06d}.jpg" for i in range(n)]
v = rng.choice([-1, 1], size=(n, 40))
with open(base/"list_attr_celeba.txt","w") as f:
    f.write(f"{n}\n"+" ".join(CELEBA_ATTRIBUTES)+" \n")
    for fn, row in zip(files, v):
        f.write(fn + "".join(f"  {x}" if x > 0 else f" {x}" for x in row) + "\n")
(base/"list_eval_partition.txt").write_text("".join(f"{fn} {i%3}\n" for i, fn in enumerate(files)))
(base/"identity_CelebA.txt").write_text("".join(f"{fn} {i%10177+1}\n" for i, fn in enumerate(files)))
with open(base/"list_landmarks_align_celeba.txt","w") as f:
    f.write(f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n")
    for fn in files: f.write(fn + "   69  109  106  113   77  142   73  152  108  154\n")
t0=time.perf_counter(); t = read_celeba(base); dt=time.perf_counter()-t0
print(f"read_celeba: {len(t)} rows x {len(t.attributes)} attrs in {dt:.2f}s")
