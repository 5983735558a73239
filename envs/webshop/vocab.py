"""Vocabulary of the generated catalog: product kinds in WebShop's five categories, their
attributes, option groups and price ranges. Written for this project (see generate.py)."""

from __future__ import annotations

from dataclasses import dataclass

OptionSpec = str | tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class Kind:
    """A kind of product: what a shopper searches for and what such products look like."""

    query: str  # the search term the kind is filed under (the original's `query` field)
    title: str  # the kind's words in a product title
    bare: str  # the kind in an instruction, without an article
    path: str  # category path, levels separated by " › "
    options: tuple[OptionSpec, ...]  # option groups: a key of OPTION_GROUPS or (name, values)
    price: tuple[float, float]
    attributes: tuple[str, ...]  # attributes typical of this kind


def _v(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


OPTION_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "color_apparel": (
        "color",
        _v(
            "black, white, navy, heather grey, red, royal blue, olive green, khaki, burgundy, pink, "
            "light blue, charcoal, beige, dark green, purple, mustard yellow, brown, teal, camo"
        ),
    ),
    "color_hair": (
        "color",
        _v(
            "natural black, dark brown, chestnut brown, ash blonde, honey blonde, platinum blonde, "
            "auburn, burgundy red, ombre brown, silver grey"
        ),
    ),
    "color_makeup": (
        "color",
        _v("nude, rose pink, berry, classic red, coral, mauve, plum, wine, peach, cherry, mocha, taupe"),
    ),
    "color_tool": (
        "color",
        _v("black, white, rose gold, silver, pink, sky blue, lilac purple, gold, mint green"),
    ),
    "color_home": (
        "color",
        _v(
            "white, black, dark grey, light grey, beige, navy blue, walnut, natural oak, espresso, "
            "cream, sage green, cognac"
        ),
    ),
    "color_tech": ("color", _v("black, white, silver, space grey, blue, red, rose gold, midnight green")),
    "size_apparel": ("size", _v("x-small, small, medium, large, x-large, xx-large, 3x-large")),
    "size_waist": ("size", _v("30w x 30l, 32w x 30l, 32w x 32l, 34w x 30l, 34w x 32l, 36w x 32l, 38w x 34l")),
    "size_shoe": ("size", _v("6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10, 10.5, 11, 12")),
    "size_hair": ("size", _v("14 inch, 16 inch, 18 inch, 20 inch, 22 inch, 24 inch")),
    "size_liquid": (
        "size",
        _v(
            "1 fl oz (pack of 1), 3.4 fl oz (pack of 1), 8 fl oz (pack of 1), 16 fl oz (pack of 1), "
            "8 fl oz (pack of 2), 16 fl oz (pack of 3)"
        ),
    ),
    "size_cream": ("size", _v("0.5 ounce, 1 ounce, 1.7 ounce, 2.5 ounce, 4 ounce")),
    "size_count": ("size", _v("5 count, 10 count, 12 count, 20 count, 24 count, 30 count")),
    "size_food": (
        "size",
        _v(
            "4 ounce (pack of 1), 8 ounce (pack of 1), 12 ounce (pack of 2), 16 ounce (pack of 4), "
            "1 pound (pack of 1), 2 pound (pack of 1)"
        ),
    ),
    "size_bed": ("size", _v("twin, twin xl, full, queen, king, california king")),
    "size_furniture": ("size", _v("24 inch, 30 inch, 36 inch, 48 inch, 60 inch")),
    "size_rug": ("size", _v("2 x 3 ft, 4 x 6 ft, 5 x 7 ft, 8 x 10 ft, 9 x 12 ft")),
    "scent": (
        "scent",
        _v(
            "lavender, eucalyptus spearmint, coconut, rose, citrus, sandalwood, unscented, vanilla, "
            "tea tree, ocean breeze, cucumber melon"
        ),
    ),
    "pattern": ("pattern name", _v("solid, stripe, floral, plaid, geometric, polka dot, paisley, abstract")),
    "pack": ("item package quantity", _v("1, 2, 3, 4, 6, 10")),
    "capacity": ("capacity", _v("32gb, 64gb, 128gb, 256gb, 512gb, 1tb")),
    "cable_length": ("size", _v("3 ft, 6 ft, 10 ft, 15 ft, 25 ft")),
    "flavor_sweet": (
        "flavor name",
        _v("chocolate, vanilla, strawberry, peanut butter, mint chocolate, caramel, cookies and cream"),
    ),
    "flavor_savory": (
        "flavor name",
        _v("original, sea salt, barbecue, sour cream and onion, jalapeno, salt and vinegar"),
    ),
    "flavor_fruit": (
        "flavor name",
        _v("mixed berry, apple cinnamon, mango, cherry, lemon, raspberry, tropical"),
    ),
    "flavor_drink": (
        "flavor name",
        _v("lime, grapefruit, black cherry, lemon, orange, watermelon, unflavored"),
    ),
}

COMMON_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "beauty": _v(
        "high quality, easy use, travel size, long lasting, natural ingredients, cruelty free, "
        "paraben free, sensitive skin, dry skin, easy carry"
    ),
    "food": _v(
        "gluten free, non gmo, sugar free, low calorie, dairy free, keto friendly, high protein, "
        "plant based, certified organic, individually wrapped, natural flavors, low carb, kosher certified, "
        "great gift, shelf stable, low sodium"
    ),
    "fashion": _v(
        "machine wash, hand wash, daily wear, soft material, quality materials, comfortable fit, "
        "wash cold, imported fabric"
    ),
    "garden": _v(
        "easy clean, easy assemble, living room, space saving, heavy duty, eco friendly, high quality, "
        "easy install, non slip, storage space"
    ),
    "electronics": _v(
        "high speed, fast charging, easy install, high definition, plug play, easy carry, usb port, "
        "wireless bluetooth, high performance, easy use, water resistant, carrying case"
    ),
}

PATH_PREFIXES = {
    "B": "Beauty & Personal Care",
    "F": "Clothing, Shoes & Jewelry",
    "G": "Grocery & Gourmet Food",
    "H": "Home & Kitchen",
    "E": "Electronics",
}

# One kind per line: query | title words | instruction words | category path | option groups
# (keys of OPTION_GROUPS, or name=value/value/...; "-" for none) | price range | attributes.
KIND_TABLE = """
[beauty]
hair extensions | Clip in Hair Extensions | clip-in hair extensions | {B} › Hair Care › Hair Extensions, Wigs & Accessories › Extensions | color_hair; size_hair | 12-70 | natural looking, easy apply, heat resistant, human hair, thick hair
shampoo | Shampoo | shampoo | {B} › Hair Care › Shampoo & Conditioner › Shampoos | scent; size_liquid | 6-35 | sulfate free, hair growth, color treated, dry hair, hair loss
conditioner | Conditioner | hair conditioner | {B} › Hair Care › Shampoo & Conditioner › Conditioners | scent; size_liquid | 6-35 | sulfate free, damaged hair, curly hair, dry hair, argan oil
face moisturizer | Face Moisturizer Cream | face moisturizer | {B} › Skin Care › Face › Creams & Moisturizers › Face Moisturizers | size_cream | 9-60 | anti aging, fine lines, hyaluronic acid, fragrance free, oily skin
lipstick | Matte Liquid Lipstick | matte lipstick | {B} › Makeup › Lips › Lipstick | color_makeup | 5-28 | highly pigmented, non toxic, smudge proof, moisturizing formula
nail polish | Gel Nail Polish | gel nail polish | {B} › Foot, Hand & Nail Care › Nail Art & Polish › Nail Polish | color_makeup | 4-22 | quick dry, non toxic, nail art, chip resistant, glossy finish
body wash | Body Wash | body wash | {B} › Skin Care › Body › Cleansers › Body Washes | scent; size_liquid | 5-30 | plant based, shea butter, daily use, rich lather
deodorant | Natural Deodorant | deodorant | {B} › Personal Care › Deodorants & Antiperspirants › Deodorant | scent | 5-25 | aluminum free, baking soda free, odor protection, coconut oil
perfume | Eau de Parfum Spray | eau de parfum | {B} › Fragrance › Women's › Eau de Parfum | size_liquid | 18-120 | fine mist, floral scent, gift set, glass bottle
makeup brushes | Makeup Brush Set | makeup brushes | {B} › Tools & Accessories › Makeup Brushes & Tools › Brush Sets | color_tool | 8-45 | synthetic hair, easy clean, foundation brush, eye shadow
hair dryer | Ionic Hair Dryer | hair dryer | {B} › Hair Care › Styling Tools & Appliances › Hair Dryers | color_tool | 20-150 | fast drying, low noise, hair damage, diffuser attachment
electric toothbrush | Sonic Electric Toothbrush | electric toothbrush | {B} › Oral Care › Toothbrushes & Accessories › Electric Toothbrushes | color_tool | 18-110 | teeth whitening, sensitive teeth, replacement heads, travel case
sunscreen | Mineral Sunscreen Lotion | sunscreen | {B} › Skin Care › Sunscreens & Tanning Products › Sunscreens | size_cream | 7-40 | broad spectrum, reef safe, oil free, zinc oxide
sheet mask | Hydrating Facial Sheet Mask | facial sheet masks | {B} › Skin Care › Face › Treatments & Masks › Masks | size_count | 6-30 | hyaluronic acid, dull skin, korean skincare, aloe vera
wig | Lace Front Wig | lace front wig | {B} › Hair Care › Hair Extensions, Wigs & Accessories › Wigs | color_hair; size_hair | 25-160 | natural looking, heat resistant, pre plucked, baby hair
beard oil | Beard Oil | beard oil | {B} › Shave & Hair Removal › Men's › Beard & Mustache Care › Beard Oils | scent; size_liquid | 7-30 | beard growth, jojoba oil, argan oil, non greasy
nail clippers | Nail Clipper Set | nail clippers | {B} › Foot, Hand & Nail Care › Tools & Accessories › Nail Clippers | color_tool | 5-25 | stainless steel, ingrown toenail, thick nails
essential oil | Essential Oil | essential oil | {B} › Personal Care › Aromatherapy › Essential Oils › Single Oils | scent; size_liquid | 6-35 | essential oils, therapeutic grade, glass dropper, aromatherapy diffuser
bath bombs | Bath Bombs | bath bombs | {B} › Personal Care › Bath & Bathing Accessories › Bath Bombs | scent; size_count | 9-40 | shea butter, gift set, handmade soap, bubble bath
eyeshadow palette | Eyeshadow Palette | eyeshadow palette | {B} › Makeup › Eyes › Eyeshadow | color_makeup | 8-50 | highly pigmented, shimmer matte, blendable formula, eye makeup
[fashion]
men's jeans | Men's Stretch Denim Jeans | men's jeans | {F} › Men › Clothing › Jeans | color_apparel; size_waist | 20-80 | slim fit, relaxed fit, button closure, straight leg, classic fit
women's leggings | Women's Yoga Leggings | yoga leggings for women | {F} › Women › Clothing › Active › Leggings | color_apparel; size_apparel | 12-45 | high waist, tummy control, moisture wicking, gym workout, squat proof
men's t-shirts | Men's Cotton T-Shirt | men's t-shirts | {F} › Men › Clothing › Shirts › T-Shirts | color_apparel; size_apparel | 8-35 | short sleeve, crew neck, regular fit, cotton spandex, moisture wicking
women's dresses | Women's Casual Midi Dress | women's dresses | {F} › Women › Clothing › Dresses › Casual | color_apparel; size_apparel | 18-70 | long sleeve, elastic waist, v neck, polyester spandex, side pockets
men's running shoes | Men's Running Shoes | running shoes for men | {F} › Men › Shoes › Athletic › Running | color_apparel; size_shoe | 25-120 | rubber sole, arch support, non slip, lace closure, memory foam
women's sandals | Women's Flat Sandals | women's sandals | {F} › Women › Shoes › Sandals › Flats | color_apparel; size_shoe | 15-60 | ankle strap, open toe, non slip, rubber sole, arch support
hoodies | Pullover Hoodie Sweatshirt | hoodies | {F} › Men › Clothing › Fashion Hoodies & Sweatshirts | color_apparel; size_apparel | 18-60 | long sleeve, drawstring closure, fleece lined, kangaroo pocket
men's shorts | Men's Athletic Shorts | men's shorts | {F} › Men › Clothing › Shorts › Athletic | color_apparel; size_apparel | 10-40 | elastic waist, drawstring closure, quick drying, gym workout, zipper pockets
women's jumpsuits | Women's Jumpsuit Romper | women's jumpsuits, rompers & overalls | {F} › Women › Clothing › Jumpsuits, Rompers & Overalls | color_apparel; size_apparel | 20-65 | short sleeve, high waist, wide leg, polyester spandex, belted waist
socks | Cushioned Crew Socks | crew socks | {F} › Men › Clothing › Socks › Athletic | color_apparel; pack | 8-30 | moisture wicking, arch support, cushioned sole, breathable cotton
winter jackets | Winter Puffer Jacket | winter jackets | {F} › Women › Clothing › Coats, Jackets & Vests › Down & Parkas | color_apparel; size_apparel | 40-180 | faux fur, zipper closure, detachable hood, windproof shell
sports bras | Women's Sports Bra | sports bras | {F} › Women › Clothing › Active › Sports Bras | color_apparel; size_apparel | 10-40 | removable padding, high impact, racerback design, moisture wicking
pajama sets | Pajama Set | pajama sets | {F} › Women › Clothing › Lingerie, Sleep & Lounge › Sleep & Lounge › Sets | color_apparel; size_apparel | 16-55 | long sleeve, elastic waist, button down, lounge wear
ankle boots | Women's Ankle Boots | women's ankle boots | {F} › Women › Shoes › Boots › Ankle & Bootie | color_apparel; size_shoe | 30-110 | side zipper, block heel, rubber sole, faux leather
baseball caps | Baseball Cap | baseball caps | {F} › Men › Accessories › Hats & Caps › Baseball Caps | color_apparel | 8-30 | adjustable strap, sun protection, cotton twill, curved brim
dress shirts | Men's Dress Shirt | men's dress shirts | {F} › Men › Clothing › Shirts › Dress Shirts | color_apparel; size_apparel | 18-65 | long sleeve, slim fit, button closure, wrinkle free, spread collar
kids sneakers | Kids Sneakers | sneakers for kids | {F} › Boys › Shoes › Sneakers | color_apparel; size_shoe | 18-60 | hook loop, rubber sole, non slip, light weight
women's watches | Women's Quartz Watch | women's watches | {F} › Women › Watches › Wrist Watches | color=gold/silver/rose gold/black/two tone | 25-200 | stainless steel, quartz movement, water resistant, mesh band
sunglasses | Polarized Sunglasses | sunglasses | {F} › Men › Accessories › Sunglasses & Eyewear Accessories › Sunglasses | color_tool | 10-80 | polarized lenses, uv protection, light weight, metal frame
backpacks | Travel Laptop Backpack | backpacks | {F} › Luggage & Travel Gear › Backpacks › Laptop Backpacks | color_apparel | 20-90 | laptop compartment, large capacity, padded straps, anti theft
[food]
protein bars | Protein Bars | protein bars | {G} › Snack Foods › Bars › Protein Bars | flavor_sweet; size_count | 12-45 | low sugar, whole grain, snack bar, meal replacement
coffee beans | Whole Bean Coffee | whole bean coffee | {G} › Beverages › Coffee, Tea & Cocoa › Coffee › Whole Coffee Beans | roast=light roast/medium roast/dark roast/espresso roast; size_food | 9-45 | fair trade, single origin, low acid, arabica beans
green tea | Green Tea Bags | green tea bags | {G} › Beverages › Coffee, Tea & Cocoa › Tea › Green | flavor name=jasmine/matcha/ginger lemon/honey/peach/classic; size_count | 5-30 | caffeine free, antioxidant rich, hot or iced, loose leaf
potato chips | Potato Chips | potato chips | {G} › Snack Foods › Chips & Crisps › Potato | flavor_savory; size_food | 4-30 | kettle cooked, family size, avocado oil, snack packs
beef jerky | Beef Jerky | beef jerky | {G} › Meat & Seafood › Jerky & Dried Meats › Beef | flavor name=original/teriyaki/peppered/sweet and hot/hickory smoked; size_food | 8-45 | low fat, ready eat, grass fed, resealable bag
dark chocolate | Dark Chocolate Bar | dark chocolate bars | {G} › Candy & Chocolate › Chocolate Bars | flavor name=sea salt/almond/orange/raspberry/mint/espresso; size_count | 6-35 | fair trade, cacao content, vegan friendly, low sugar
nut butter | Almond Butter | almond butter | {G} › Pantry Staples › Jams, Jellies & Sweet Spreads › Nut Butters | flavor name=creamy/crunchy/honey roasted/maple/cinnamon raisin; size_food | 7-30 | no added sugar, dry roasted, palm oil free, protein snack
olive oil | Extra Virgin Olive Oil | extra virgin olive oil | {G} › Pantry Staples › Cooking Oils, Vinegars & Sprays › Oils › Olive | size_food | 8-50 | cold pressed, first cold, glass bottle, single origin
granola | Granola Cereal | granola | {G} › Breakfast Foods › Cereals › Granola | flavor_fruit; size_food | 5-25 | whole grain, high fiber, low sugar, breakfast cereal
pasta | Pasta | pasta | {G} › Pantry Staples › Pasta & Noodles › Pasta | style=penne/spaghetti/rotini/elbows/fusilli/linguine; size_food | 3-25 | whole wheat, chickpea pasta, high fiber, lentil pasta
honey | Raw Honey | raw honey | {G} › Pantry Staples › Jams, Jellies & Sweet Spreads › Honey | flavor name=wildflower/clover/manuka/orange blossom/buckwheat; size_food | 7-45 | raw unfiltered, glass jar, local honey, squeeze bottle
mixed nuts | Mixed Nuts | mixed nuts | {G} › Snack Foods › Nuts & Seeds › Mixed Nuts | flavor_savory; size_food | 7-35 | roasted salted, resealable bag, heart healthy, snack packs
gummy candy | Gummy Candy | gummy candy | {G} › Candy & Chocolate › Gummy Candies | flavor_fruit; size_count | 4-25 | fat free, party favors, real fruit, chewy candy
sparkling water | Sparkling Water | sparkling water | {G} › Beverages › Bottled Beverages, Water & Drink Mixes › Water › Sparkling Water | flavor_drink; size_count | 6-30 | zero calorie, caffeine free, real fruit, recyclable cans
cookies | Chewy Cookies | cookies | {G} › Snack Foods › Cookies | flavor_sweet; size_count | 4-28 | soft baked, real butter, snack packs, school lunch
hot sauce | Hot Sauce | hot sauce | {G} › Pantry Staples › Condiments & Salad Dressings › Hot Sauce | flavor name=habanero/chipotle/garlic/sriracha/ghost pepper/green chile; size_food | 4-25 | small batch, fermented peppers, glass bottle, extra hot
baby food | Baby Food Pouches | baby food pouches | {G} › Baby Foods › Pouches | flavor_fruit; size_count | 8-35 | no added sugar, bpa free, toddler snack, stage 2
seasoning | Seasoning Blend | seasoning blend | {G} › Pantry Staples › Herbs, Spices & Seasonings › Mixed Spices & Seasonings | flavor name=all purpose/taco/lemon pepper/cajun/italian herb/everything bagel; size_food | 4-22 | salt free, msg free, spice blend, resealable bag
oatmeal | Instant Oatmeal Packets | instant oatmeal | {G} › Breakfast Foods › Cereals › Oatmeal | flavor_fruit; size_count | 4-22 | whole grain, high fiber, low sugar, quick cook
dried fruit | Dried Fruit Snacks | dried fruit | {G} › Snack Foods › Dried Fruit & Raisins | flavor_fruit; size_food | 5-30 | no added sugar, resealable bag, vegan friendly, freeze dried
[garden]
sofa | Loveseat Sofa | loveseat sofas | {H} › Furniture › Living Room Furniture › Sofas & Couches | color_home | 150-800 | mid century, solid wood, high density, removable cushions
bed sheets | Bed Sheet Set | bed sheets | {H} › Bedding › Sheets & Pillowcases › Sheet & Pillowcase Sets | color_home; size_bed | 20-120 | deep pocket, super soft, wrinkle free, machine wash
pillows | Memory Foam Pillow | memory foam pillows | {H} › Bedding › Bed Pillows & Positioners › Bed Pillows | size=standard/queen/king; pack | 18-80 | cooling gel, neck pain, side sleeper, washable cover
area rugs | Area Rug | area rugs | {H} › Home Décor Products › Area Rugs, Runners & Pads › Area Rugs | pattern; size_rug | 30-300 | non shedding, low pile, stain resistant, dining room
coffee tables | Coffee Table | coffee tables | {H} › Furniture › Living Room Furniture › Tables › Coffee Tables | color_home | 60-350 | mid century, engineered wood, lift top, metal frame
bookshelves | Bookshelf | bookshelves | {H} › Furniture › Home Office Furniture › Bookcases | color_home; size_furniture | 45-260 | engineered wood, adjustable shelves, industrial style, anti tip
office chairs | Ergonomic Office Chair | office chairs | {H} › Furniture › Home Office Furniture › Home Office Chairs › Desk Chairs | color_home | 70-400 | lumbar support, height adjustable, breathable mesh, swivel base
blackout curtains | Blackout Curtains | blackout curtains | {H} › Home Décor Products › Window Treatments › Curtains & Drapes › Panels | color_home; size=42 x 63 inch/52 x 84 inch/52 x 95 inch/52 x 108 inch | 18-70 | thermal insulated, energy saving, grommet top, noise reducing
throw blankets | Throw Blanket | throw blankets | {H} › Bedding › Blankets & Throws › Throws | color_home; size=50 x 60 inch/60 x 80 inch/90 x 90 inch | 15-60 | super soft, flannel fleece, couch bed, lightweight cozy
knife sets | Kitchen Knife Set | kitchen knife sets | {H} › Kitchen & Dining › Cutlery & Knife Accessories › Knife Block Sets | color_tool | 25-200 | stainless steel, dishwasher safe, high carbon, ergonomic handle
cookware sets | Nonstick Cookware Set | cookware sets | {H} › Kitchen & Dining › Cookware › Pots & Pans › Cookware Sets | color_home | 50-300 | non stick, dishwasher safe, oven safe, induction compatible
water bottles | Insulated Water Bottle | water bottles | {H} › Kitchen & Dining › Storage & Organization › Travel & To-Go Food Containers › Water Bottles | color_tool; size=17 oz/24 oz/32 oz/40 oz/64 oz | 12-45 | bpa free, leak proof, double wall, stainless steel
food containers | Food Storage Containers | food storage containers | {H} › Kitchen & Dining › Storage & Organization › Food Storage › Food Storage Containers | size_count | 12-50 | bpa free, leak proof, microwave safe, freezer safe
wall mirrors | Wall Mirror | wall mirrors | {H} › Home Décor Products › Mirrors › Wall-Mounted Mirrors | color_home; size_furniture | 30-220 | wall mounted, shatter proof, bathroom vanity, metal frame
desk lamps | LED Desk Lamp | led desk lamps | {H} › Lighting & Ceiling Fans › Lamps & Shades › Desk Lamps | color_tool | 15-70 | eye caring, touch control, dimmable light, charging port
garden hoses | Expandable Garden Hose | garden hoses | Patio, Lawn & Garden › Watering Equipment › Garden Hoses | size=25 ft/50 ft/75 ft/100 ft | 18-75 | kink free, leak proof, brass fittings, spray nozzle
planters | Ceramic Planter Pot | planter pots | Patio, Lawn & Garden › Gardening & Lawn Care › Pots, Planters & Container Accessories › Planters | color_home; size=6 inch/8 inch/10 inch/12 inch | 12-60 | drainage hole, indoor outdoor, modern design, snake plant
patio furniture | Patio Furniture Set | patio furniture sets | Patio, Lawn & Garden › Patio Furniture & Accessories › Patio Furniture Sets | color_home | 120-700 | weather resistant, outdoor patio, cushions included, tempered glass
bath towels | Cotton Bath Towels | bath towels | {H} › Bath › Towels › Bath Towels | color_home; pack | 15-60 | highly absorbent, quick drying, super soft, turkish cotton
storage ottoman | Storage Ottoman | storage ottomans | {H} › Furniture › Living Room Furniture › Ottomans | color_home | 35-180 | faux leather, foot rest, folding design, hidden storage
[electronics]
wireless earbuds | Wireless Earbuds | wireless earbuds | {E} › Headphones, Earbuds & Accessories › Earbud Headphones | color_tech | 15-150 | noise cancelling, charging case, hands free, touch control
phone cases | Phone Case | phone cases | {E} › Cell Phones & Accessories › Cases, Holsters & Sleeves › Basic Cases | color_tech; style=iphone 14/iphone 14 pro/iphone 15/galaxy s23/pixel 8 | 8-35 | shock absorbing, wireless charging, raised edges, slim design
usb c cables | USB C Charging Cable | usb-c cables | {E} › Computers & Accessories › Cables & Accessories › Cables & Interconnects › USB Cables | color_tech; cable_length | 6-25 | braided nylon, data transfer, fast charge, durable design
power banks | Portable Charger Power Bank | portable chargers | {E} › Cell Phones & Accessories › Chargers & Power Adapters › Portable Power Banks | color_tech | 15-70 | high capacity, led display, dual output, compact design
bluetooth speakers | Portable Bluetooth Speaker | bluetooth speakers | {E} › Portable Audio & Video › Portable Speakers & Docks › Portable Bluetooth Speakers | color_tech | 20-150 | stereo sound, deep bass, long battery, outdoor party
hdmi cables | HDMI Cable | hdmi cables | {E} › Television & Video › Accessories › Cables › HDMI Cables | cable_length | 6-30 | gold plated, ultra hd, ethernet channel, dolby vision
smart watches | Smart Watch Fitness Tracker | smart watches | {E} › Wearable Technology › Smartwatches | color_tech | 30-250 | heart rate, sleep monitor, step counter, message notifications
laptop stands | Adjustable Laptop Stand | laptop stands | {E} › Computers & Accessories › Laptop Accessories › Lap Desks | color_tech | 15-60 | aluminum alloy, height adjustable, heat dissipation, foldable design
wireless mice | Wireless Mouse | wireless mice | {E} › Computers & Accessories › Computer Accessories & Peripherals › Keyboards, Mice & Accessories › Mice | color_tech | 8-60 | ergonomic design, usb receiver, silent click, long battery
keyboards | Mechanical Gaming Keyboard | mechanical keyboards | {E} › Computers & Accessories › Computer Accessories & Peripherals › Keyboards, Mice & Accessories › Keyboards | color_tech; style=red switch/blue switch/brown switch | 25-150 | rgb backlit, anti ghosting, hot swappable, detachable cable
security cameras | Wireless Security Camera | security cameras | {E} › Camera & Photo › Video Surveillance › Surveillance Cameras › Dome Cameras | pack | 25-200 | night vision, motion detection, two way audio, cloud storage
tv wall mounts | TV Wall Mount Bracket | tv wall mounts | {E} › Television & Video › Accessories › TV Mounts, Stands & Turntables › TV Wall & Ceiling Mounts | size=26-55 inch/37-70 inch/42-85 inch | 20-90 | wall mounted, full motion, tilt swivel, stud mounting
memory cards | Micro SD Memory Card | micro sd cards | {E} › Computers & Accessories › Computer Accessories & Peripherals › Memory Cards › Micro SD Cards | capacity | 6-120 | high endurance, sd adapter, 4k video, nintendo switch
flash drives | USB Flash Drive | usb flash drives | {E} › Computers & Accessories › Data Storage › USB Flash Drives | capacity; pack | 6-80 | metal casing, key ring, data storage, usb 3.0
headphones | Over Ear Headphones | over-ear headphones | {E} › Headphones, Earbuds & Accessories › Headphones › Over-Ear Headphones | color_tech | 25-300 | noise cancelling, foldable design, built-in microphone, long battery
webcams | HD Webcam | webcams | {E} › Computers & Accessories › Computer Accessories & Peripherals › Audio & Video Accessories › Webcams | - | 20-120 | built-in microphone, wide angle, auto focus, privacy cover
car phone mounts | Car Phone Mount | car phone mounts | {E} › Cell Phones & Accessories › Accessories › Car Accessories › Car Cradles & Mounts | color_tech | 8-40 | one hand, strong suction, dashboard windshield, air vent
led strip lights | LED Strip Lights | led strip lights | {E} › Television & Video › Accessories › Lighting › LED Strip Lights | size=16.4 ft/32.8 ft/50 ft/65.6 ft/100 ft | 10-50 | remote control, color changing, app control, music sync
power strips | Surge Protector Power Strip | surge protector power strips | {E} › Accessories & Supplies › Power Protection › Surge Protectors | color=white/black; cable_length | 10-45 | overload protection, flat plug, usb charging, mounting holes
game controllers | Wireless Game Controller | game controllers | {E} › Video Games › Accessories › Controllers › Gamepads & Standard Controllers | color_tech | 18-75 | dual vibration, rechargeable battery, turbo function, motion control
"""


def _parse_kinds(table: str) -> dict[str, tuple[Kind, ...]]:
    kinds: dict[str, list[Kind]] = {}
    category = ""
    for line in table.strip().splitlines():
        if line.startswith("["):
            category = line.strip("[]")
            kinds[category] = []
            continue
        query, title, bare, path, options, price, attributes = (f.strip() for f in line.split("|"))
        specs: list[OptionSpec] = []
        for spec in options.split(";") if options != "-" else []:
            name, _, values = spec.strip().partition("=")
            specs.append((name, tuple(values.split("/"))) if values else name)
        low, high = (float(x) for x in price.split("-"))
        kinds[category].append(
            Kind(query, title, bare, path.format(**PATH_PREFIXES), tuple(specs), (low, high), _v(attributes))
        )
    return {c: tuple(ks) for c, ks in kinds.items()}


KINDS = _parse_kinds(KIND_TABLE)

# Words for brand names: a start, an optional middle and an end.
BRAND_STARTS = _v(
    "Al, Bel, Cor, Dav, El, Fen, Gal, Hal, Iv, Jor, Kal, Lum, Mor, Nov, Or, Pel, Quen, Ros, Sol, Tav, "
    "Ul, Ver, Wyn, Xan, Yar, Zel, Bri, Cas, Dor, Fal"
)
BRAND_MIDDLES = ("", "", "a", "e", "i", "o", "ar", "en", "il")
BRAND_ENDS = _v("ra, ix, on, ly, ven, tek, ora, ino, mar, sa, vo, ette, ark, us, ina, ex")
SERIES = _v("Pro, Plus, Max, Lite, Classic, Essentials, Premium, Deluxe, Signature, Everyday, Select, Prime")
AUDIENCES = {
    "fashion": ("for Women", "for Men", "Unisex"),
    "beauty": ("for Women", "for Men", "for All Skin Types"),
}

# Filler text: it must not contain any attribute (the reward searches product text for them).
USES = {
    "beauty": ("your morning routine", "a self care evening", "home or travel"),
    "fashion": ("work and weekends", "the gym or the office", "all seasons"),
    "food": ("the pantry", "busy mornings", "sharing with family"),
    "garden": ("any room of the house", "apartments and houses", "everyday living"),
    "electronics": ("home and office", "commuting and travel", "work and play"),
}
REVIEW_TITLES = {
    5: ("Love it", "Exactly what I wanted", "Five stars", "Would buy again"),
    4: ("Pretty good", "Good value", "Does the job"),
    3: ("It's okay", "Average", "Mixed feelings"),
    2: ("Not great", "Expected more"),
    1: ("Disappointed", "Returned it"),
}
REVIEW_BODIES = {
    5: (
        "Arrived quickly and works perfectly.",
        "Better than the one I had before.",
        "My whole family uses it now.",
    ),
    4: (
        "Nice overall, the packaging could be better.",
        "Good for the price.",
        "Works well, took a while to arrive.",
    ),
    3: ("It is fine, nothing special.", "Some parts feel cheap but it works."),
    2: ("Smaller than pictured.", "Stopped being useful after a few weeks."),
    1: ("Not as described.", "Did not work for me at all."),
}
